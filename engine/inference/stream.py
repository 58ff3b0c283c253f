"""Streamed, tiled model inference over a raster of any size.

Pipeline per raster (memory bounded by a few tile-row strips, whatever the raster size):

1. :func:`low_surface_streamed` - first pass over blocks of the DSM: the normalisation's low
   surface (a coarse grid; see :mod:`engine.data.normalise`).
2. A prefetch thread (:class:`Prefetcher`) reads the next tile-row strips (real rows, full
   width), normalises them at their true offsets and cuts the tiles (reflected outside the
   raster) while the model computes the current one.
3. The main thread runs the model on batches of tiles of one tile row (batches never span tile
   rows, so a rank of a distributed run computes exactly the same batches as a single process)
   and :class:`~engine.inference.stitch.RowStitcher` turns tile rows into finished row bands.

The raster is accessed only through a ``read(row_off, col_off, height, width)`` callable
returning ``(values, valid)`` (boundless; :meth:`engine.io.raster.RasterReader.read_window`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.data.normalise import (
    LowSurface,
    NormalisationConfig,
    block_size_px,
    low_surface_from_blocks,
    normalise_window,
)
from engine.inference.stitch import RowStitcher
from engine.inference.tiling import TilePlan, reflect_index, whole_image_indices

ReadFn = Callable[[int, int, int, int], tuple[NDArray[np.float32], NDArray[np.bool_]]]
Forward = Callable[[NDArray[np.float32]], NDArray[np.float32]]
Band = tuple[int, int, NDArray[np.float32], NDArray[np.bool_]]


def low_surface_streamed(
    read: ReadFn, height: int, width: int, pixel_size: float, config: NormalisationConfig
) -> LowSurface:
    """Low surface of a raster read one strip of blocks at a time."""
    block = block_size_px(config, pixel_size)

    def blocks() -> Iterator[tuple[int, int, NDArray[np.float32], NDArray[np.bool_]]]:
        for bi in range(-(-height // block)):
            r0 = bi * block
            values, valid = read(r0, 0, min(block, height - r0), width)
            for bj in range(-(-width // block)):
                sl = np.s_[:, bj * block : (bj + 1) * block]
                yield bi, bj, values[sl], valid[sl]

    return low_surface_from_blocks(blocks(), height, width, block, config.percentile)


@dataclass
class Strip:
    """One tile row ready for the model."""

    k: int
    tiles: NDArray[np.float32]  # [n_cols, 1, tile, tile]
    valid_rows: NDArray[np.bool_]  # DSM valid mask of raster rows valid_r0.., full width
    valid_r0: int


def read_strip(
    read: ReadFn, plan: TilePlan, k: int, surface: LowSurface, norm: NormalisationConfig
) -> Strip:
    """Read, normalise and cut tile row ``k`` (mirror-reflected outside the raster)."""
    rows = reflect_index(np.arange(plan.row_origin(k), plan.row_origin(k) + plan.tile), plan.height)
    r_lo, r_hi = int(rows.min()), int(rows.max()) + 1
    values, valid = read(r_lo, 0, r_hi - r_lo, plan.width)
    x = normalise_window(values, valid, surface, r_lo, 0, norm)
    cols = reflect_index(np.arange(-plan.lead, -plan.lead + plan.padded_width()), plan.width)
    strip = x[rows - r_lo][:, cols]
    s, t = plan.stride, plan.tile
    tiles = np.stack([strip[:, j * s : j * s + t] for j in range(plan.n_cols)])[:, None]
    return Strip(k, np.ascontiguousarray(tiles), valid, r_lo)


class Prefetcher:
    """Run ``produce(item)`` for each item in a background thread, ``depth`` results ahead."""

    _END = object()

    def __init__(self, items: Iterable[Any], produce: Callable[[Any], Any], depth: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(list(items), produce), daemon=True)
        self._thread.start()

    def _put(self, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: list[Any], produce: Callable[[Any], Any]) -> None:
        try:
            for item in items:
                if self._stop.is_set() or not self._put(("ok", produce(item))):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put(("error", exc))
            return
        self._put(("end", self._END))

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self._queue.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value

    def close(self) -> None:
        """Stop the thread (also when the consumer gave up early) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
            self._thread.join(timeout=0.05)


def predict_bands(
    read: ReadFn,
    plan: TilePlan,
    surface: LowSurface,
    norm: NormalisationConfig,
    forward: Forward,
    batch_size: int = 1,
    bands: tuple[int, int] | None = None,
    progress: Callable[[float], None] | None = None,
    prefetch: int = 2,
) -> Iterator[Band]:
    """Yield finished row bands ``(start, stop, logits[T,h,W], valid[h,W])`` in order.

    ``bands`` restricts the output to row bands ``[first, stop)`` (a distributed rank's share);
    ``progress(fraction)`` is called after every batch (it may raise ``Cancelled``).
    """
    first, stop = bands if bands is not None else (0, plan.n_rows)
    rows = plan.tile_rows_for_bands(first, stop)
    if len(rows) == 0:
        return
    total = len(rows) * plan.n_cols
    done = 0
    fetch = Prefetcher(rows, lambda k: read_strip(read, plan, k, surface, norm), depth=prefetch)
    stitcher: RowStitcher | None = None
    try:
        for strip in fetch:
            outs = []
            for b in range(0, len(strip.tiles), batch_size):
                outs.append(forward(strip.tiles[b : b + batch_size]))
                done += len(outs[-1])
                if progress is not None:
                    progress(done / total)
            logits = np.concatenate(outs) if len(outs) > 1 else outs[0]
            if stitcher is None:
                stitcher = RowStitcher(plan, logits.shape[1], first_tile_row=strip.k)
            band = stitcher.add(strip.k, logits, strip.valid_rows, strip.valid_r0)
            if strip.k >= first:
                yield band
    finally:
        fetch.close()


def predict_whole(
    x: NDArray[np.float32], forward: Forward, lead: int, multiple: int
) -> NDArray[np.float32]:
    """Whole-image reference: one forward pass over the normalised raster ``x[H, W]``, padded
    by reflection exactly like the tiles (``lead`` pixels before, up to a multiple after)."""
    h, w = x.shape
    rows = whole_image_indices(h, lead, multiple)
    cols = whole_image_indices(w, lead, multiple)
    padded = x[rows][:, cols][None, None]
    return forward(np.ascontiguousarray(padded))[0, :, lead : lead + h, lead : lead + w]
