"""Streamed, tiled model inference over a raster of any size.

Pipeline per raster (memory bounded by a few column chunks, whatever the raster's height *and
width*):

1. The model's input transform (:mod:`engine.features.inputs`) prepares: nothing for feature
   channels, a first pass over the DSM for the legacy low surface.
2. A prefetch thread (:class:`Prefetcher`) reads the next **column chunks** of tile rows
   (:meth:`~engine.data.tiling.TilePlan.chunks`: at most :data:`CHUNK_PX` input pixels
   each, margins included) with the transform's halo, turns them into model input at their true
   offsets (each channel of a window read with the halo equals the whole-image channel bit for
   bit: ``tests/features/test_filters.py``; tiles still see only ``margin`` pixels of context,
   see :mod:`engine.data.tiling` for what that costs) and cuts
   the tiles (reflected outside the raster) while the model computes the current one.
3. The main thread runs the model on batches of tiles of one chunk (batches never span chunks,
   and chunks are a multiple of the batch size, so the batches are those of whole tile rows and
   a rank of a distributed run computes exactly the same batches as a single process); each
   batch is blended at once by :class:`~engine.inference.stitch.ChunkStitcher`, which hands
   out finished cells ``band(k) x cols(j0, j1)`` (:func:`predict_chunks`).

:func:`predict_bands` assembles the cells into full-width row bands of float logits (tests,
benchmarks, reference comparisons); ``engine infer`` writes the cells directly.

The raster is accessed only through a ``read(row_off, col_off, height, width)`` callable
returning ``(values, valid)`` (boundless; :meth:`engine.io.raster.RasterReader.read_window`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.data.tiling import TilePlan, reflect_index, whole_image_indices
from engine.features.inputs import InputTransform
from engine.inference.stitch import Cell, ChunkStitcher

ReadFn = Callable[[int, int, int, int], tuple[NDArray[np.float32], NDArray[np.bool_]]]
Forward = Callable[[NDArray[np.float32]], NDArray[np.float32]]
Band = tuple[int, int, NDArray[np.float32], NDArray[np.bool_]]

CHUNK_PX = 2**20
"""Input pixels (margins included) of one column chunk of a tile row: 1 Mpx = 4 MB of float32
input, e.g. 4 tiles of 512 px (1856 columns with centre crop); a raster 2048 px wide already
needs two chunks per tile row, so memory is at its plateau there. The margins read twice cost
``(tile - stride) / chunk width`` (about 3 %) more reading and normalising."""


@dataclass
class Chunk:
    """Tiles ``j0 .. j1-1`` of tile row ``k``, ready for the model."""

    k: int
    j0: int
    j1: int
    tiles: NDArray[np.float32]  # [j1 - j0, C, tile, tile]
    valid: NDArray[np.bool_]  # DSM valid mask of the window read at (r0, c0)
    r0: int
    c0: int


def read_chunk(
    read: ReadFn, plan: TilePlan, k: int, j0: int, j1: int, transform: InputTransform
) -> Chunk:
    """Read, transform and cut tiles ``j0 .. j1-1`` of tile row ``k`` (mirror-reflected outside
    the raster): one window read of the chunk's rows and columns, margins and the transform's
    halo included."""
    t, s = plan.tile, plan.stride
    rows = reflect_index(np.arange(plan.row_origin(k), plan.row_origin(k) + t), plan.height)
    cols = reflect_index(np.arange(plan.col_origin(j0), plan.col_origin(j1 - 1) + t), plan.width)
    r_lo, r_hi = int(rows.min()), int(rows.max()) + 1
    c_lo, c_hi = int(cols.min()), int(cols.max()) + 1
    h = transform.halo
    values, valid = read(r_lo - h, c_lo - h, r_hi - r_lo + 2 * h, c_hi - c_lo + 2 * h)
    x = transform.window(values, valid, r_lo, c_lo)
    del values
    valid = valid[h : valid.shape[0] - h, h : valid.shape[1] - h]
    strip = _take(x, rows - r_lo, axis=1)  # a view inside the raster, a copy at its edges
    tiles = np.empty((j1 - j0, x.shape[0], t, t), dtype=np.float32)
    for i in range(j1 - j0):
        tiles[i] = _take(strip, cols[i * s : i * s + t] - c_lo, axis=2)
    return Chunk(k, j0, j1, tiles, valid, r_lo, c_lo)


def _take(a: NDArray[np.float32], index: NDArray[np.int64], axis: int) -> NDArray[np.float32]:
    """``a`` at ``index`` along ``axis``: a slice (no copy) when the index is a run of
    consecutive positions (tiles inside the raster), else a gather (mirrored edges)."""
    first = int(index[0])
    if np.array_equal(index, np.arange(first, first + len(index))):
        cut = [slice(None)] * a.ndim
        cut[axis] = slice(first, first + len(index))
        return a[tuple(cut)]
    return np.take(a, index, axis=axis)


def read_strip(read: ReadFn, plan: TilePlan, k: int, transform: InputTransform) -> Chunk:
    """All tiles of tile row ``k`` as one chunk (benchmarks; full width)."""
    return read_chunk(read, plan, k, 0, plan.n_cols, transform)


class Prefetcher:
    """Run ``produce(item)`` for each item in background threads, ``depth`` results ahead, and
    hand the results out in order.

    ``workers=1``: one thread produces the items one after the other. ``workers > 1``: that
    thread keeps ``workers`` items in production at once in a thread pool (``produce`` must then
    be thread-safe: one raster handle per thread, see
    :class:`~engine.inference.readers.ThreadReaders`). ``wait_seconds`` adds up the time the
    consumer waited for a result: production starving the consumer.
    """

    _END = object()

    def __init__(
        self,
        items: Iterable[Any],
        produce: Callable[[Any], Any],
        depth: int = 2,
        workers: int = 1,
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        self._thread = threading.Thread(
            target=self._run, args=(list(items), produce, max(1, workers)), daemon=True
        )
        self._thread.start()

    def _put(self, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: list[Any], produce: Callable[[Any], Any], workers: int) -> None:
        pooled = in_order(items, produce, workers, "reader") if workers > 1 else None
        try:
            if pooled is None:
                for item in items:
                    if self._stop.is_set() or not self._put(("ok", produce(item))):
                        return
            else:
                for value in pooled:
                    if self._stop.is_set() or not self._put(("ok", value)):
                        return
        except BaseException as exc:  # handed to the consumer
            self._put(("error", exc))
            return
        finally:
            if pooled is not None:
                pooled.close()  # cancels what has not started, waits for the rest
        self._put(("end", self._END))

    def __iter__(self) -> Iterator[Any]:
        while True:
            t0 = time.perf_counter()
            kind, value = self._queue.get()
            self.wait_seconds += time.perf_counter() - t0
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value

    def close(self) -> None:
        """Stop the threads (also when the consumer gave up early) and wait for them."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
            self._thread.join(timeout=0.05)


def in_order(
    items: Iterable[Any], produce: Callable[[Any], Any], workers: int, name: str = "worker"
) -> Generator[Any, None, None]:
    """``produce(item)`` of every item, ``workers`` at a time in a thread pool, in item order.
    ``items`` is iterated in the consumer's thread, at most ``workers`` items ahead of the
    results taken; when the consumer stops early, pending items are cancelled and running ones
    finish before this returns."""
    with ThreadPoolExecutor(workers, thread_name_prefix=f"canopygaps-{name}") as pool:
        pending: deque[Future[Any]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(produce, item))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def predict_chunks(
    read: ReadFn,
    plan: TilePlan,
    transform: InputTransform,
    forward: Forward,
    batch_size: int = 1,
    bands: tuple[int, int] | None = None,
    progress: Callable[[float], None] | None = None,
    prefetch: int = 2,
    chunk_px: int | None = None,
    workers: int = 1,
    stats: dict[str, float] | None = None,
) -> Iterator[Cell]:
    """Yield finished cells ``(row0, row1, col0, col1, logits[T,h,w], valid[h,w])``: row bands
    in order, each from left to right in column chunks of at most ``chunk_px`` (default
    :data:`CHUNK_PX`) input pixels.

    ``bands`` restricts the output to row bands ``[first, stop)`` (a distributed rank's share);
    ``progress(fraction)`` is called after every batch (it may raise ``Cancelled``);
    ``workers`` reader threads prepare chunks (``read`` must be thread-safe when > 1);
    ``stats["reader_wait"]`` receives the seconds spent waiting for them.
    """
    first, stop = bands if bands is not None else (0, plan.n_rows)
    rows = plan.tile_rows_for_bands(first, stop)
    if len(rows) == 0:
        return
    chunks = plan.chunks(CHUNK_PX if chunk_px is None else chunk_px, batch_size)
    items = [(k, j0, j1) for k in rows for j0, j1 in chunks]
    total = len(rows) * plan.n_cols
    done = 0

    def produce(item: tuple[int, int, int]) -> Chunk:
        k, j0, j1 = item
        return read_chunk(read, plan, k, j0, j1, transform)

    fetch = Prefetcher(items, produce, depth=prefetch, workers=workers)
    stitcher = ChunkStitcher(plan)
    try:
        for chunk in fetch:
            stitcher.start(chunk.k, chunk.j0, chunk.j1)
            for b in range(0, len(chunk.tiles), batch_size):
                logits = forward(chunk.tiles[b : b + batch_size])
                for i in range(len(logits)):
                    stitcher.add(chunk.j0 + b + i, logits[i])
                done += len(logits)
                del logits
                if progress is not None:
                    progress(done / total)
            k = chunk.k
            cell = stitcher.finish(chunk.valid, chunk.r0, chunk.c0)
            del chunk
            if k >= first:  # tile row first - 1 (ramp) only feeds the row carry
                yield cell
    finally:
        fetch.close()
        if stats is not None:
            stats["reader_wait"] = stats.get("reader_wait", 0.0) + fetch.wait_seconds


def predict_bands(
    read: ReadFn,
    plan: TilePlan,
    transform: InputTransform,
    forward: Forward,
    batch_size: int = 1,
    bands: tuple[int, int] | None = None,
    progress: Callable[[float], None] | None = None,
    prefetch: int = 2,
    chunk_px: int | None = None,
) -> Iterator[Band]:
    """Yield full-width row bands ``(start, stop, logits[T,h,W], valid[h,W])`` in order.

    The cells of :func:`predict_chunks` joined per band: float memory grows with the raster
    width here (tests, benchmarks, whole-image comparisons); ``engine infer`` writes cells.
    """
    out: NDArray[np.float32] | None = None
    valid: NDArray[np.bool_] | None = None
    for r0, r1, c0, c1, logits, ok in predict_chunks(
        read, plan, transform, forward, batch_size, bands, progress, prefetch, chunk_px
    ):
        if c0 == 0 or out is None or valid is None:
            out = np.zeros((len(logits), r1 - r0, plan.width), dtype=np.float32)
            valid = np.zeros((r1 - r0, plan.width), dtype=bool)
        out[:, :, c0:c1] = logits
        valid[:, c0:c1] = ok
        if c1 == plan.width:
            yield r0, r1, out, valid
            out = valid = None


def predict_whole(
    x: NDArray[np.float32], forward: Forward, lead: int, multiple: int
) -> NDArray[np.float32]:
    """Whole-image reference: one forward pass over the model input ``x[C, H, W]`` (or one
    channel ``[H, W]``), padded by reflection exactly like the tiles (``lead`` pixels before,
    up to a multiple after)."""
    if x.ndim == 2:
        x = x[None]
    h, w = x.shape[1:]
    rows = whole_image_indices(h, lead, multiple)
    cols = whole_image_indices(w, lead, multiple)
    padded = x[:, rows][:, :, cols][None]
    return forward(np.ascontiguousarray(padded))[0, :, lead : lead + h, lead : lead + w]
