"""``engine classical``: gap masks without a model.

The methods (``adaptive``, the default, and ``smoothed_minimum``, of which ref21 is a setting)
are in :mod:`engine.inference.classical_core` (arrays; reused by the evaluation package as the
baselines). This command streams them over rasters of any size: row bands of ``band_rows``
rows, each cut into column blocks of at most :data:`BLOCK_PX` pixels (so memory does not grow
with the raster width either), are read with the method's halo (boundless reads, outside =
nodata), so the streamed result equals the whole-image one bit for bit. Outputs use the same
format as ``engine infer`` (masks, optional heights layer, polygons, min gap area, hole
filling, batch mode, torchrun scale-out).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.config.base import Config, positive, thresholds_ok
from engine.config.base import non_negative as _non_negative
from engine.errors import ConfigError
from engine.events import Reporter
from engine.features.ground import AdaptiveParams
from engine.inference.classical_core import METHODS, ClassicalMethod, gap_masks
from engine.inference.distributed import dist_context
from engine.inference.naming import output_names
from engine.inference.pipeline import ExtraSpec, Post, write_outputs
from engine.inference.readers import check_dsm, open_dsm
from engine.inference.staging import Staging

__all__ = ["ClassicalConfig", "gap_masks", "run_classical"]

BLOCK_PX = 2**21
"""Pixels of one classical block, halo included (the adaptive method holds a few float64
grounds and slopes: about 150 bytes each at its peak): a 4096-px-wide raster already takes
two blocks per band, so memory is at its plateau there."""
MIN_BLOCK_COLS = 64


@dataclass
class ClassicalConfig(Config):
    """Settings of ``engine classical``."""

    dsm: Path | list[Path] = field(
        metadata={"help": "DSM GeoTIFF (one band, projected CRS in metres), or a list of DSMs."}
    )
    output: Path = field(
        metadata={
            "help": "Gap mask GeoTIFF (uint8, one band per threshold, 255 = nodata); a folder "
            "when several DSMs are given."
        }
    )
    band: int | None = field(
        default=None,
        metadata={
            "help": "Band of the DSM holding the heights (default: the DSM must have one band).",
            "check": positive,
        },
    )
    thresholds: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={
            "help": "Height thresholds in metres: gap where height <= threshold.",
            "check": thresholds_ok,
        },
    )
    method: str = field(
        default="adaptive",
        metadata={
            "help": "adaptive (small/large slope-corrected windows blended by forest openness; "
            "parameters chosen on the shared lidar sites) or smoothed_minimum (window_m, "
            "smoothing_m; 21/21 = the ref21 baseline).",
            "choices": METHODS,
        },
    )
    adaptive: AdaptiveParams = field(
        default_factory=AdaptiveParams,
        metadata={"help": "Parameters of the adaptive method (tabulated by threshold)."},
    )
    window_m: float = field(
        default=21.0,
        metadata={
            "help": "smoothed_minimum: side in metres of the local-minimum window.",
            "check": positive,
        },
    )
    smoothing_m: float = field(
        default=21.0,
        metadata={
            "help": "smoothed_minimum: side in metres of the mean filter smoothing the local "
            "minimum (0 = none).",
            "check": _non_negative,
        },
    )
    heights: Path | None = field(
        default=None,
        metadata={
            "help": "Optional float32 GeoTIFF of heights above the ground estimate (adaptive: "
            "one band per threshold)."
        },
    )
    polygons: Path | None = field(
        default=None,
        metadata={
            "help": "Optional GeoPackage of gap polygons (threshold_m, area_m2, perimeter_m)."
        },
    )
    min_gap_area_m2: float = field(
        default=0.0,
        metadata={"help": "Remove gaps smaller than this area in m2.", "check": _non_negative},
    )
    fill_holes: bool = field(
        default=False, metadata={"help": "Fill canopy holes enclosed by a gap (before min area)."}
    )
    max_hole_area_m2: float | None = field(
        default=None,
        metadata={
            "help": "With fill_holes: only fill holes up to this area in m2.",
            "check": _non_negative,
        },
    )
    band_rows: int = field(
        default=512,
        metadata={
            "help": "Rows processed per streamed band (each is read with the method's context of "
            "up to 71 rows above and below).",
            "check": positive,
        },
    )

    def validate(self) -> None:
        if isinstance(self.dsm, list) and not self.dsm:
            raise ConfigError("Config key 'dsm' is an empty list.", "Give at least one DSM.")
        if not self.thresholds or any(t <= 0 for t in self.thresholds):
            raise ConfigError("Config key 'thresholds' must hold positive heights in metres.")
        if self.method not in METHODS:
            raise ConfigError(
                f"Config key 'method' = {self.method!r}; valid methods: {', '.join(METHODS)}."
            )
        self.adaptive.validate()

    def calculation(self) -> ClassicalMethod:
        """The method and settings of this run."""
        return ClassicalMethod(
            [float(t) for t in self.thresholds],
            self.method,
            self.adaptive,
            self.window_m,
            self.smoothing_m,
        )

    @property
    def dsms(self) -> list[Path]:
        """The DSMs as a list."""
        return list(self.dsm) if isinstance(self.dsm, list) else [self.dsm]


def column_blocks(width: int, rows: int, halo: int, budget_px: int) -> list[tuple[int, int]]:
    """Column ranges ``[c0, c1)`` of the blocks of a band of ``rows`` rows: at most
    ``budget_px`` pixels each with the halo (at least :data:`MIN_BLOCK_COLS` columns). Blocks
    have a fixed width (the last one is the rest), so the largest block, and the peak memory,
    is the same for any raster at least that wide."""
    cols = max(MIN_BLOCK_COLS, budget_px // (rows + 2 * halo) - 2 * halo)
    return [(c, min(c + cols, width)) for c in range(0, width, cols)]


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
    blocks of at most :data:`BLOCK_PX` pixels (halo included), left to right."""
    method = config.calculation()
    halo = method.halo_px(pixel_size)
    for i in range(first, stop):
        a, b = bands[i]
        blocks = column_blocks(width, b - a, halo, BLOCK_PX)
        for n, (c0, c1) in enumerate(blocks):
            values, valid = read(a - halo, c0 - halo, b - a + 2 * halo, c1 - c0 + 2 * halo)
            h = method.window(values, valid, a, c0, pixel_size)
            del values, valid
            yield a, c0, gap_masks(h, method.thresholds), [h] if with_heights else []
            reporter.progress((i - first + (n + 1) / len(blocks)) / (stop - first), "classical")


def run_classical(config: ClassicalConfig, reporter: Reporter) -> dict[str, Any]:
    """Run the classical method on every DSM; return output paths and timings."""
    t_start = time.perf_counter()
    names = output_names(config.dsms, config.output, None, config.polygons, heights=config.heights)
    grids = [check_dsm(n.dsm, None, 0.0, False, config.band) for n in names]
    thresholds = [float(t) for t in config.thresholds]
    ctx = dist_context()
    staging = Staging()
    results: list[dict[str, Any]] = []
    try:
        with staging.run(commit=ctx.rank == 0):
            for i, (n, (info, _)) in enumerate(zip(names, grids, strict=True)):
                sub = reporter.sub(i / len(names), (i + 1) / len(names), "classical")
                bands = [
                    (a, min(a + config.band_rows, info.height))
                    for a in range(0, info.height, config.band_rows)
                ]
                compute = sub.sub(0.0, 0.85 if ctx.rank == 0 else 1.0, "classical")

                def produce(
                    first: int,
                    stop: int,
                    n: Any = n,
                    info: Any = info,
                    bands: Any = bands,
                    compute: Reporter = compute,
                ) -> Any:
                    reader = open_dsm(n.dsm, None, config.band)
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
                            n.heights is not None,
                        )
                    finally:
                        reader.close()

                extras = []
                if n.heights is not None:
                    descriptions = config.calculation().height_descriptions()
                    extras.append(
                        ExtraSpec(
                            staging.path(n.heights), len(descriptions), descriptions=descriptions
                        )
                    )
                post = Post.from_config(config, info.pixel_area)
                t0 = time.perf_counter()
                stats = write_outputs(
                    info,
                    thresholds,
                    bands,
                    produce,
                    staging.path(n.mask),
                    extras,
                    staging.path(n.polygons) if n.polygons else None,
                    post,
                    ctx,
                    staging,
                    n.work_dir,
                    sub,
                )
                seconds = time.perf_counter() - t0
                results.append(
                    {
                        "dsm": str(n.dsm),
                        "output": str(n.mask),
                        "heights": str(n.heights) if n.heights else None,
                        "polygons": str(n.polygons) if n.polygons else None,
                        "width": info.width,
                        "height": info.height,
                        "seconds": round(seconds, 3),
                        "mpx_per_s": round(info.width * info.height / 1e6 / seconds, 3)
                        if seconds
                        else None,
                        **stats,
                    }
                )
    finally:
        ctx.close()
    reporter.progress(1.0, "done")
    out: dict[str, Any] = {
        "outputs": [r["output"] for r in results],
        "thresholds": thresholds,
        "seconds": round(time.perf_counter() - t_start, 3),
        "rasters": results,
    }
    if len(results) == 1:
        out.update({k: results[0][k] for k in ("output", "heights", "polygons", "mpx_per_s")})
    return out
