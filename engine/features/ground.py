"""Ground estimates from a DSM alone, and the adaptive classical gap method built on them.

*Ground of window w and slope coefficient c*: the smoothed minimum ``m_w`` of the DSM (local
minimum over ``w`` metres, then its mean over ``w`` metres), raised by ``c * (w / 2) * |grad
m_w|``. On a slope the minimum of a window lies downhill, about ``(w / 2) * slope`` below the
ground at the centre; ``c`` (chosen on training data) corrects that, partly, since the minimum
also sits on canopy where no ground is visible.

*Adaptive method*: per threshold, a small-window ground (sharp, right in open forest) and a
large-window ground (right under closed canopy, where a small window's minimum lies on the
canopy), blended by the local *openness*: the share of pixels within ``openness_window_m``
that lie at most ``openness_low_m`` above a reference ground. Where the forest is open the
small window is used, where it is closed the large one, with a soft ramp between. Heights are
``DSM - ground``; a pixel is gap at threshold ``t`` where its height is ``<= t``.

*ref21*: the simplest filter a user would write, ``uniform(minimum(dsm, 21 m), 21 m)`` with
no slope term: a named baseline in every report (:mod:`engine.inference.classical_core`).

The settings (:class:`Ground`, :class:`AdaptiveParams`) are in :mod:`engine.features.config`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from engine.features.config import AdaptiveParams, Ground
from engine.features.filters import (
    box_fraction,
    box_sum,
    clamp,
    grow_minimum,
    odd_px,
    pool_minimum,
    slope,
    smoothed_minimum,
    square_minimum,
    upsample,
    zero_nan,
)

_T = TypeVar("_T")
_R = TypeVar("_R")


def two_at_a_time(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``fn`` of each of ``items``, in order, two at a time in threads: numpy and the filters
    release the GIL on whole arrays, so the second core works on another window or band."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(fn, items))


GROUND_FACTOR = 2
"""Ground estimates are computed on cells of ``GROUND_FACTOR`` x ``GROUND_FACTOR`` pixels (the
minimum of each cell's valid pixels), then interpolated bilinearly to the pixels: grounds are
smooth over their 10-80 m windows, and a 2 x 2 grid does a quarter of the filtering work."""


class GroundStack:
    """Ground estimates of one DSM window, each computed once (smoothed minima shared).

    Works on the cell grid (:data:`GROUND_FACTOR`): a window must start at a row and column of
    the raster that are multiples of the factor (callers align their reads; see
    :func:`aligned_origin`), so that its cells are the raster's cells.

    ``core`` (``row0, row1, col0, col1``, pixels of the window): the part whose pixel values
    are wanted (a block without its halo). The cell grids cover the whole window, but
    everything at the pixels (:meth:`ground`, :meth:`openness`, ...; :attr:`values` and
    :attr:`valid`) covers only the core, with the values the whole window would have there.
    """

    def __init__(
        self,
        values: NDArray[np.floating],
        valid: NDArray[np.bool_],
        pixel_size: float,
        factor: int = GROUND_FACTOR,
        core: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.pixel_size = pixel_size
        self.factor, self.cell = factor, pixel_size * factor
        self.cells, self.cells_valid = pool_minimum(values, valid, factor)
        r0, r1, c0, c1 = core or (0, values.shape[0], 0, values.shape[1])
        self.values, self.valid = values[r0:r1, c0:c1], valid[r0:r1, c0:c1]
        self._rows = _cell_span(r0, r1, factor, self.cells.shape[0])
        self._cols = _cell_span(c0, c1, factor, self.cells.shape[1])
        self._squares: dict[int, NDArray[np.floating]] = {}
        self._minima: dict[int, NDArray[np.float64]] = {}
        self._slopes: dict[int, NDArray[np.float32]] = {}
        self._counts: dict[int, NDArray[np.float64]] = {}
        self._grounds: dict[tuple[int, float], NDArray[np.float64]] = {}
        self._fine: dict[object, NDArray[np.float32]] = {}

    # -- on the cell grid ------------------------------------------------------------------
    def count(self, size: int) -> NDArray[np.float64]:
        """Valid cells in each ``size`` square (shared by every mean over that size)."""
        if size not in self._counts:
            self._counts[size] = box_sum(self.cells_valid, size)
        return self._counts[size]

    def _cells_of(self, window_m: float) -> int:
        return odd_px(window_m, self.cell)

    def square(self, size: int) -> NDArray[np.floating]:
        """Minimum of the valid cells of each ``size`` square (``inf``: none), grown from a
        smaller one already known where exact (:func:`grow_minimum`), else filtered."""
        if size not in self._squares:
            smaller = [v for v in self._squares if v < size and (size - v) // 2 <= v // 2]
            base = max((v for v in smaller if (size - v) % 2 == 0), default=None)
            self._squares[size] = (
                square_minimum(self.cells, self.cells_valid, size)
                if base is None
                else grow_minimum(self._squares[base], base, size)
            )
        return self._squares[size]

    def cell_minimum(self, window_m: float) -> NDArray[np.float64]:
        """Smoothed minimum over ``window_m`` (window and smoothing alike), per cell."""
        w = self._cells_of(window_m)
        if w not in self._minima:
            low = self.square(w)
            self._minima[w] = smoothed_minimum(
                self.cells, self.cells_valid, w, w, self.count(w), low
            )
        return self._minima[w]

    def cell_slope(self, window_m: float) -> NDArray[np.float32]:
        """Gradient magnitude (m/m) of :meth:`cell_minimum`, per cell."""
        w = self._cells_of(window_m)
        if w not in self._slopes:
            # only at valid cells: beyond the raster's edge the minimum is defined in a padded
            # window but not in a whole image, and slopes must not depend on that
            m = np.where(self.cells_valid, self.cell_minimum(window_m), np.nan)
            self._slopes[w] = slope(m, self.cell)
        return self._slopes[w]

    def prefetch(self, windows_m: Sequence[float]) -> None:
        """Compute the smoothed minima and slopes of ``windows_m``, :func:`two_at_a_time`."""
        todo = sorted({self._cells_of(w) for w in windows_m} - set(self._minima))
        for w in todo:  # shared counts and minima first (dict writes stay in this thread;
            self.count(w)  # ascending, so each minimum grows from a smaller one)
            self.square(w)

        def one(w: int) -> tuple[int, NDArray[np.float64], NDArray[np.float32]]:
            low = self._squares[w]
            m = smoothed_minimum(self.cells, self.cells_valid, w, w, self._counts[w], low)
            return w, m, slope(np.where(self.cells_valid, m, np.nan), self.cell)

        for w, m, g in two_at_a_time(one, todo):
            self._minima[w], self._slopes[w] = m, g

    def _ground_key(self, g: Ground) -> tuple[int, float]:
        return self._cells_of(g.window_m), g.slope

    def cell_ground(self, g: Ground) -> NDArray[np.float64]:
        """Ground estimate ``g`` per cell (metres; NaN where undefined)."""
        key = self._ground_key(g)
        if key not in self._grounds:
            m = self.cell_minimum(g.window_m)
            if g.slope == 0:
                self._grounds[key] = m
            else:
                radius = key[0] * self.cell / 2
                self._grounds[key] = m + (g.slope * radius) * self.cell_slope(g.window_m)
        return self._grounds[key]

    def cell_openness(self, params: AdaptiveParams) -> NDArray[np.float64]:
        """Share of valid cells within ``openness_window_m`` whose lowest point lies at most
        ``openness_low_m`` above the reference ground (NaN: none valid)."""
        low = (self.cells - self.cell_ground(params.openness_ground)) <= params.openness_low_m
        size = self._cells_of(params.openness_window_m)
        return box_fraction(low & self.cells_valid, self.cells_valid, size, self.count(size))

    # -- on the pixels -----------------------------------------------------------------------
    def _upsample(
        self, cells: NDArray[np.floating], out: NDArray[np.float32] | None = None
    ) -> NDArray[np.float32]:
        """``cells`` interpolated to the pixels. Only valid cells take part: beyond a raster's
        edge a windowed filter is defined where a whole image has no cell at all, and the
        pixels must not depend on that."""
        (a, b, skip_r), (c, d, skip_c) = self._rows, self._cols
        part = (slice(a, b), slice(c, d))
        inside = np.where(self.cells_valid[part], cells[part], np.nan)
        shape = self.values.shape
        if skip_r == skip_c == 0:
            return upsample(inside, self.factor, shape, out)
        fine = upsample(inside, self.factor, (skip_r + shape[0], skip_c + shape[1]))
        if out is None:
            return np.ascontiguousarray(fine[skip_r:, skip_c:])
        out[...] = fine[skip_r:, skip_c:]
        return out

    def fine(
        self,
        key: object,
        make: Callable[[], NDArray[np.floating]],
        out: NDArray[np.float32] | None = None,
    ) -> NDArray[np.float32]:
        """The cells ``make()`` returns, interpolated to the pixels (:meth:`_upsample`). Kept
        under ``key``, unless written into ``out`` (a pixel-sized float32 array: used once)."""
        if key in self._fine:
            if out is None:
                return self._fine[key]
            out[...] = self._fine[key]
            return out
        if out is not None:
            return self._upsample(make(), out)
        self._fine[key] = self._upsample(make())
        return self._fine[key]

    def grounds(self, grounds: Sequence[Ground]) -> list[NDArray[np.float32]]:
        """:meth:`ground` of each of ``grounds``, interpolated :func:`two_at_a_time`."""
        by_key = {self._ground_key(g): g for g in grounds}
        todo = [k for k in by_key if ("ground", *k) not in self._fine]
        cells = {k: self.cell_ground(by_key[k]) for k in todo}
        fines = two_at_a_time(lambda k: self._upsample(cells[k]), todo)
        for key, fine in zip(todo, fines, strict=True):
            self._fine[("ground", *key)] = fine
        return [self.ground(g) for g in grounds]

    def minimum(
        self, window_m: float, out: NDArray[np.float32] | None = None
    ) -> NDArray[np.float32]:
        """Smoothed minimum over ``window_m`` at the pixels (see :meth:`fine` for ``out``)."""
        key = ("min", self._cells_of(window_m))
        return self.fine(key, lambda: self.cell_minimum(window_m), out)

    def slope(self, window_m: float, out: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
        """Slope of :meth:`minimum` at the pixels (m/m; see :meth:`fine` for ``out``)."""
        key = ("slope", self._cells_of(window_m))
        return self.fine(key, lambda: self.cell_slope(window_m), out)

    def ground(self, g: Ground) -> NDArray[np.float32]:
        """Ground estimate ``g`` at the pixels (metres; NaN where undefined)."""
        return self.fine(("ground", *self._ground_key(g)), lambda: self.cell_ground(g))

    def openness(self, params: AdaptiveParams) -> NDArray[np.float32]:
        """:meth:`cell_openness` at the pixels."""
        key = ("open", *(getattr(params, k) for k in OPENNESS_KEYS))
        return self.fine(key, lambda: self.cell_openness(params))


def _cell_span(p0: int, p1: int, factor: int, n: int) -> tuple[int, int, int]:
    """Cells ``a..b-1`` whose interpolation gives pixels ``p0..p1-1`` as the whole grid's
    would (their cells and the neighbour each side, where the grid has one), and the pixels
    from cell ``a``'s first to ``p0``."""
    a = max(0, p0 // factor - 1)
    b = min(n, -(-p1 // factor) + 1)
    return a, b, p0 - a * factor


OPENNESS_KEYS = (
    "openness_window_m",
    "openness_low_m",
    "openness_ground_window_m",
    "openness_ground_slope",
)


def aligned_origin(origin: int, factor: int = GROUND_FACTOR) -> int:
    """Rows (or columns) to drop from a read starting at ``origin`` so that it starts on a cell
    boundary of the raster's ground grid."""
    return origin % factor


def ground_halo_px(g: Ground, pixel_size: float, factor: int = GROUND_FACTOR) -> int:
    """Context each side (pixels) that makes a windowed ground estimate exact: the cells of the
    minimum and the smoothing, one more for the slope and one for the interpolation, plus one
    cell of slack for aligning the window to the grid."""
    cells = odd_px(g.window_m, pixel_size * factor) - 1 + (1 if g.slope else 0) + 1
    return factor * (cells + 1)


def adaptive_halo_px(params: AdaptiveParams, thresholds: Sequence[float], pixel_size: float) -> int:
    """Context each side that makes windowed adaptive heights exact."""
    grounds = params.grounds(thresholds)
    halo = max(ground_halo_px(g, pixel_size) for g in grounds)
    box = odd_px(params.openness_window_m, pixel_size * GROUND_FACTOR) // 2
    opened = ground_halo_px(params.openness_ground, pixel_size) + GROUND_FACTOR * box
    return max(halo, opened)


def open_weight(openness: NDArray[np.floating], params: AdaptiveParams) -> NDArray[np.float32]:
    """Weight of the small-window ground: 1 in open forest, 0 under closed canopy."""
    share = zero_nan(openness.astype(np.float32))  # a copy; no valid cell near counts as closed
    if params.ramp <= 0:
        return (share >= params.open_share).astype(np.float32)
    share -= np.float32(params.open_share)
    share /= np.float32(params.ramp)
    share += np.float32(0.5)
    return clamp(share, 0.0, 1.0)


def adaptive_heights(
    stack: GroundStack,
    params: AdaptiveParams,
    thresholds: Sequence[float],
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """Heights above the adaptive ground, one band per threshold (NaN where undefined), in
    ``out`` (float32 ``[T, H, W]``) when given. Thresholds whose grounds are the same (e.g.
    beyond the table's end) share one band's work; two bands are worked on at a time."""
    pairs = [params.at(t) for t in thresholds]  # (small, large) per threshold
    stack.prefetch([params.openness_ground.window_m] + [g.window_m for p in pairs for g in p])
    stack.grounds([g for p in pairs for g in p])
    weight = open_weight(stack.openness(params), params)
    rest = np.float32(1.0) - weight
    invalid = ~stack.valid
    if out is None:
        out = np.empty((len(thresholds), *stack.values.shape), dtype=np.float32)
    first: dict[tuple[Ground, Ground], int] = {}
    for i, pair in enumerate(pairs):
        first.setdefault(pair, i)

    def band(i: int) -> None:
        small, large = pairs[i]
        ground = np.multiply(weight, stack.ground(small))
        np.multiply(rest, stack.ground(large), out=out[i])
        ground += out[i]
        # a NaN (undefined) ground gives a NaN height; grounds are never infinite
        np.subtract(stack.values, ground, out=out[i], dtype=np.float32)
        out[i][invalid] = np.nan

    two_at_a_time(band, sorted(set(first.values())))
    for i, pair in enumerate(pairs):
        if first[pair] != i:
            out[i] = out[first[pair]]
    return out
