"""``engine classical``: gap masks without a model.

The methods (``adaptive``, the default, and ``smoothed_minimum``, of which ref21 is a setting)
are in :mod:`engine.inference.classical_core` (arrays; reused by the evaluation package as the
baselines). This command streams them over rasters of any size: row bands of ``band_rows``
rows, each cut into column blocks of at most :data:`BLOCK_PX` pixels (so memory does not grow
with the raster width either), are read with the method's halo (boundless reads, outside =
nodata), so the streamed result equals the whole-image one bit for bit. The outputs go
through the same path as those of ``engine infer`` (:mod:`engine.inference.batch`,
:func:`engine.inference.pipeline.write_outputs`): masks, optional heights layer, polygons, min
gap area, hole filling, batch mode, torchrun scale-out. Settings: :class:`ClassicalConfig`
(:mod:`engine.inference.config`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.events import Reporter
from engine.inference.batch import batch_result, raster_result, run_batch
from engine.inference.classical_core import gap_masks
from engine.inference.config import ClassicalConfig
from engine.inference.distributed import DistContext, dist_context
from engine.inference.naming import OutputNames, output_names
from engine.inference.pipeline import ExtraSpec, Post, Windows, compute_reporter, write_outputs
from engine.inference.readers import check_dsm, open_dsm
from engine.inference.staging import Staging
from engine.inference.stream import in_order
from engine.io.grid import RasterInfo

BLOCK_PX = 2**19
"""Pixels of one classical block, halo included (the adaptive method holds a few float64
grounds and slopes: about 150 bytes each at its peak). Small blocks keep the filters' arrays
in the processor's caches: at 4096^2 px, 0.5 Mpx blocks computed two at a time ran about 1.7x
faster than 2 Mpx blocks one at a time, with less memory, although more of the halo is
recomputed. A 4096-px-wide raster takes several blocks per band, so memory is at its plateau
there."""
MIN_BLOCK_COLS = 64


def column_blocks(width: int, rows: int, halo: int, budget_px: int) -> list[tuple[int, int]]:
    """Column ranges ``[c0, c1)`` of the blocks of a band of ``rows`` rows: at most
    ``budget_px`` pixels each with the halo (at least :data:`MIN_BLOCK_COLS` columns). Blocks
    have a fixed width (the last one is the rest), so the largest block, and the peak memory,
    is the same for any raster at least that wide."""
    cols = max(MIN_BLOCK_COLS, budget_px // (rows + 2 * halo) - 2 * halo)
    return [(c, min(c + cols, width)) for c in range(0, width, cols)]


@dataclass(frozen=True)
class _Block:
    """One block of a band: its rows and columns (without the halo)."""

    band: int  # index in the bands
    done: float  # share of its band written once this block is
    row: int
    col: int
    rows: int
    cols: int


def _plan_blocks(
    bands: list[tuple[int, int]], first: int, stop: int, width: int, halo: int
) -> list[_Block]:
    """The blocks of bands ``first..stop-1`` in writing order."""
    out = []
    for i in range(first, stop):
        a, b = bands[i]
        cols = column_blocks(width, b - a, halo, BLOCK_PX)
        out += [
            _Block(i, n / len(cols), a, c0, b - a, c1 - c0) for n, (c0, c1) in enumerate(cols, 1)
        ]
    return out


def classical_bands(
    read: Any,
    height: int,
    width: int,
    pixel_size: float,
    config: ClassicalConfig,
    bands: list[tuple[int, int]],
    first: int,
    stop: int,
    reporter: Reporter,
    with_heights: bool = True,
) -> Iterator[tuple[int, int, NDArray[np.uint8], list[NDArray[np.float32]]]]:
    """Windows ``(row, col, masks, heights)`` of bands ``first..stop-1``, each band in column
    blocks of at most :data:`BLOCK_PX` pixels (halo included), left to right. Blocks are read
    here, in order, and computed ``config.workers`` at a time in worker threads
    (:func:`~engine.inference.stream.in_order`; the filters release the GIL), so a second core
    works while one block's masks are written."""
    method = config.calculation()
    halo = method.halo_px(pixel_size)
    blocks = _plan_blocks(bands, first, stop, width, halo)

    def read_all() -> Iterator[tuple[_Block, NDArray[np.float32], NDArray[np.bool_]]]:
        for blk in blocks:  # in this thread: one reader, in order
            yield (
                blk,
                *read(blk.row - halo, blk.col - halo, blk.rows + 2 * halo, blk.cols + 2 * halo),
            )

    def compute(job: tuple[_Block, NDArray[np.float32], NDArray[np.bool_]]) -> Any:
        blk, values, valid = job
        h = method.window(values, valid, blk.row, blk.col, pixel_size)
        return blk, gap_masks(h, method.thresholds), [h] if with_heights else []

    # closed with this generator (cancel, error): no block left running
    with contextlib.closing(in_order(read_all(), compute, config.workers, "classical")) as done:
        for blk, masks, heights in done:
            yield blk.row, blk.col, masks, heights
            reporter.progress((blk.band - first + blk.done) / (stop - first), "classical")


def run_classical(config: ClassicalConfig, reporter: Reporter) -> dict[str, Any]:
    """Run the classical method on every DSM; return output paths and timings."""
    t_start = time.perf_counter()
    names = output_names(config.dsms, config.output, None, config.polygons, heights=config.heights)
    grids = [check_dsm(n.dsm, None, 0.0, False, config.band) for n in names]
    thresholds = [float(t) for t in config.thresholds]
    ctx = dist_context()

    def write_one(i: int, n: OutputNames, staging: Staging, sub: Reporter) -> dict[str, Any]:
        return _classical_one(config, n, grids[i][0], thresholds, ctx, staging, sub)

    results = run_batch(names, ctx, write_one, reporter, "classical")
    single = ("output", "heights", "polygons", "mpx_per_s")
    return batch_result(results, {"thresholds": thresholds}, t_start, single)


def _classical_one(
    config: ClassicalConfig,
    names: OutputNames,
    info: RasterInfo,
    thresholds: list[float],
    ctx: DistContext,
    staging: Staging,
    reporter: Reporter,
) -> dict[str, Any]:
    """Write the outputs of one DSM; return its result."""
    bands = [
        (a, min(a + config.band_rows, info.height)) for a in range(0, info.height, config.band_rows)
    ]
    compute = compute_reporter(reporter, ctx, "classical")

    def produce(first: int, stop: int) -> Windows:
        reader = open_dsm(names.dsm, None, config.band)
        try:
            yield from classical_bands(
                reader.read_window,
                info.height,
                info.width,
                info.pixel_size,
                config,
                bands,
                first,
                stop,
                compute,
                names.heights is not None,
            )
        finally:
            reader.close()

    extras = []
    if names.heights is not None:
        descriptions = config.calculation().height_descriptions()
        extras.append(ExtraSpec(names.heights, len(descriptions), descriptions=descriptions))
    post = Post.from_config(config, info.pixel_area)
    t0 = time.perf_counter()
    stats = write_outputs(
        info, thresholds, bands, produce, names, extras, post, ctx, staging, reporter
    )
    seconds = time.perf_counter() - t0
    return {
        **raster_result(names, info, probabilities=False),
        "seconds": round(seconds, 3),
        "mpx_per_s": round(info.width * info.height / 1e6 / seconds, 3) if seconds else None,
        **stats,
    }
