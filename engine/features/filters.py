"""Window-exact filters of a DSM: smoothed minimum, slope, box fractions.

Every filter here treats pixels outside the array and invalid pixels alike (as missing), and
computes each output pixel from a fixed neighbourhood in a fixed order. So a window read with a
halo of :func:`engine.features.spec.FeatureSpec.halo_px` pixels (outside the raster = nodata)
gives *exactly* the values of a whole-image pass: training tiles, streamed inference windows and
whole images see the same numbers, bit for bit.

Box sums add integers (values quantised to millimetres, counts) held in float64 with
``scipy.ndimage.uniform_filter1d``'s running sums: every partial sum is an integer below 2**53,
so it is exact whatever the window offset, and costs O(1) per pixel for any window size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

MM = 1000.0  # quantisation of heights in box sums: 1 mm


def odd_px(metres: float, pixel_size: float) -> int:
    """A window of ``metres`` as an odd number of pixels (at least 1)."""
    n = max(1, round(metres / pixel_size))
    return n if n % 2 else n + 1


def box_sum(values: NDArray[Any], size: int) -> NDArray[np.float64]:
    """Sum over a ``size`` x ``size`` square (``size`` odd) centred on each pixel; zero outside.

    ``values`` must be integers (float64 holding integers below 2**53 / size**2): the result is
    then exact, whatever the window offset. Booleans (counts) take cheaper paths with the same
    result: the outer product of the in-range counts when all are true, else float32 running
    sums (exact: every partial sum is an integer below 2**24)."""
    counts = values.dtype == np.bool_
    if counts and values.all():
        rows, cols = (_in_range(n, size) for n in values.shape)
        return np.multiply.outer(rows, cols)
    out = np.asarray(values, dtype=np.float32 if counts else np.float64)
    for axis in (0, 1):
        out = ndimage.uniform_filter1d(out, size, axis=axis, mode="constant", cval=0.0)
        out *= size  # mean -> sum: exact, the mean of integers times their count
        np.rint(out, out=out)
    return out.astype(np.float64, copy=False)


def _in_range(n: int, size: int) -> NDArray[np.float64]:
    """How many of the ``size`` indices centred on each of ``0 .. n-1`` lie in ``0 .. n-1``."""
    i, r = np.arange(n), size // 2
    return (np.minimum(i + r, n - 1) - np.maximum(i - r, 0) + 1).astype(np.float64)


def box_mean(
    values: NDArray[np.floating],
    defined: NDArray[np.bool_],
    size: int,
    count: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Mean of ``values`` over the defined pixels of each ``size`` square (NaN where none);
    ``count`` (the box sum of ``defined``) may be passed when already known."""
    q = np.multiply(values, MM, dtype=np.float64)
    if not defined.all():
        q[~defined] = 0.0
    np.rint(q, out=q)
    num = box_sum(q, size)
    den = box_sum(defined, size) if count is None else count
    with np.errstate(invalid="ignore", divide="ignore"):
        num /= MM * den
    empty = den == 0
    if empty.any():
        num[empty] = np.nan
    return num


def box_fraction(
    flag: NDArray[np.bool_],
    defined: NDArray[np.bool_],
    size: int,
    count: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Share of the defined pixels of each ``size`` square where ``flag`` holds (NaN: none);
    ``count`` (the box sum of ``defined``) may be passed when already known."""
    num = box_sum(flag & defined, size)
    den = box_sum(defined, size) if count is None else count
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den == 0] = np.nan
    return out


def local_minimum(
    values: NDArray[np.floating], valid: NDArray[np.bool_], size: int
) -> NDArray[np.float64]:
    """Minimum of the valid pixels of each ``size`` square (NaN where none)."""
    return defined_minimum(square_minimum(values, valid, size))


def square_minimum(
    values: NDArray[np.floating], valid: NDArray[np.bool_], size: int
) -> NDArray[np.floating]:
    """Minimum of the valid pixels of each ``size`` square, ``inf`` where none, in the dtype
    of ``values`` (a minimum is one of the values: float32 is exact for float32 input)."""
    filled = np.where(valid, values, np.inf)
    return ndimage.minimum_filter(filled, size=size, mode="constant", cval=np.inf)


def grow_minimum(low: NDArray[np.floating], size: int, grown: int) -> NDArray[np.floating]:
    """:func:`square_minimum` over ``grown`` px from the one over ``size`` px (``low``): the
    minimum of the two squares ``d = (grown - size) / 2`` px before and after on each axis, the
    nearest in-range square at the edges. Exact (the squares cover the larger one and stay
    inside it) when ``d <= size // 2``; far cheaper than a new filter pass."""
    d = (grown - size) // 2
    if grown < size or (grown - size) % 2 or d > size // 2:
        raise ValueError(f"cannot grow a {size} px minimum to {grown} px")
    out = low
    for axis in (0, 1):
        i = np.arange(out.shape[axis])
        before = np.take(out, np.maximum(i - d, 0), axis=axis)
        after = np.take(out, np.minimum(i + d, out.shape[axis] - 1), axis=axis)
        out = np.minimum(before, after, out=before)
    return out


def defined_minimum(low: NDArray[np.floating]) -> NDArray[np.float64]:
    """A :func:`square_minimum` as float64 with NaN where no pixel was valid."""
    out = low.astype(np.float64)
    out[~np.isfinite(low)] = np.nan
    return out


def smoothed_minimum(
    values: NDArray[np.floating],
    valid: NDArray[np.bool_],
    window: int,
    smoothing: int,
    count: NDArray[np.float64] | None = None,
    low: NDArray[np.floating] | None = None,
) -> NDArray[np.float64]:
    """Local minimum over ``window`` px, then its mean over ``smoothing`` px at valid pixels
    (``count``: the box sum of ``valid`` over ``smoothing`` px, and ``low``: the
    :func:`square_minimum` over ``window``, when already known)."""
    if low is None:
        low = square_minimum(values, valid, window)
    minimum = defined_minimum(low)
    if smoothing <= 1:
        return minimum
    # the minimum is finite wherever the pixel itself is valid, so 'valid' is where it is defined
    return box_mean(minimum, valid, smoothing, count)


def slope(surface: NDArray[np.float64], pixel_size: float) -> NDArray[np.float32]:
    """Gradient magnitude (m/m, float32) of ``surface``: central differences where both
    neighbours are defined, one-sided where one is, 0 where none (NaN where ``surface`` is)."""
    undefined = np.isnan(surface)
    holes = bool(undefined.any())
    total = np.zeros(surface.shape, dtype=np.float64)
    for axis in (0, 1):
        g = _gradient(surface, axis, holes)
        g *= g
        total += g
    np.sqrt(total, out=total)
    total /= pixel_size
    out = total.astype(np.float32)
    if holes:
        out[undefined] = np.nan
    return out


def _along(
    axis: int, start: int | None, stop: int | None, step: int | None = None
) -> tuple[slice, slice]:
    """The index of ``start:stop:step`` along ``axis`` of a 2-D array."""
    sl = slice(start, stop, step)
    return (sl, slice(None)) if axis == 0 else (slice(None), sl)


def _gradient(s: NDArray[np.float64], axis: int, holes: bool) -> NDArray[np.float64]:
    """Differences of :func:`slope` along ``axis`` (before dividing by the pixel size);
    ``holes``: whether ``s`` has undefined values (NaN) to work around."""

    def at(start: int | None, stop: int | None) -> tuple[slice, slice]:
        return _along(axis, start, stop)

    d = np.diff(s, axis=axis)  # d[i] = s[i+1] - s[i]: ahead of i, behind i+1
    g = np.empty_like(s)
    if s.shape[axis] < 2:
        g.fill(0.0)
        return g
    g[at(0, 1)], g[at(-1, None)] = d[at(0, 1)], d[at(-1, None)]  # one neighbour only
    inner = g[at(1, -1)]
    np.add(d[at(1, None)], d[at(None, -1)], out=inner)
    inner *= 0.5
    if not holes:
        return g
    lost = np.isnan(inner)  # a neighbour (or the pixel) is undefined: one-sided, else 0
    if lost.any():
        ahead, behind = d[at(1, None)][lost], d[at(None, -1)][lost]
        inner[lost] = np.where(np.isnan(ahead), behind, ahead)
    return zero_nan(g)  # no neighbour defined (surfaces are finite or NaN)


def pool_minimum(
    values: NDArray[np.floating], valid: NDArray[np.bool_], factor: int
) -> tuple[NDArray[np.floating], NDArray[np.bool_]]:
    """Minimum of the valid pixels of each ``factor`` x ``factor`` cell (NaN: none valid), in
    the dtype of ``values``, and the cells' validity. A last partial row or column of cells
    counts the missing pixels as invalid, as beyond a raster's edge."""
    if factor == 1:
        return np.where(valid, values, np.nan), valid.copy()
    h, w = values.shape
    hc, wc = -(-h // factor), -(-w // factor)
    filled = np.where(valid, values, np.inf)
    if (hc * factor, wc * factor) != (h, w):
        filled = np.pad(
            filled, ((0, hc * factor - h), (0, wc * factor - w)), constant_values=np.inf
        )
    low = filled[::factor, ::factor].copy()
    for i in range(factor):
        for j in range(factor):
            if i or j:
                np.minimum(low, filled[i::factor, j::factor], out=low)
    ok = np.isfinite(low)
    low[~ok] = np.nan
    return low, ok


def upsample(
    coarse: NDArray[np.floating],
    factor: int,
    shape: tuple[int, ...],
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """Bilinear values of a grid of ``factor`` x ``factor`` cells at the centres of the pixels
    of ``shape`` (cell ``I`` holds pixels ``factor*I .. factor*I + factor-1``). Undefined (NaN)
    neighbours, and those beyond the array, drop out with the weights renormalised, so a window
    gives the whole-image values wherever its cells' neighbours are inside it. float32 (heights
    in metres to about 0.1 mm), written into ``out`` (float32, ``shape``) when given."""
    c = np.asarray(coarse, dtype=np.float32)
    if factor == 1:
        fine = c[: shape[0], : shape[1]]
    else:
        rows = _upsample_axis(c, factor, 0)[: shape[0]]
        if out is not None and rows.shape[1] * factor == shape[1]:
            return _upsample_axis(rows, factor, 1, out)  # straight into ``out``
        fine = _upsample_axis(rows, factor, 1)[:, : shape[1]]
    if out is None:
        return np.ascontiguousarray(fine) if factor > 1 else fine.copy()
    out[...] = fine
    return out


def _upsample_axis(
    c: NDArray[np.float32], factor: int, axis: int, out: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """One axis of :func:`upsample`: sub-pixel ``k`` of cell ``I`` mixes cell ``I`` with its
    neighbour on the sub-pixel's side, weights by distance; a NaN neighbour drops out (the
    cell's own value is kept), as beyond the array's ends. ``out``: the result's array."""
    shape = list(c.shape)
    shape[axis] *= factor
    out = np.empty(shape, dtype=np.float32) if out is None else out
    n = c.shape[axis]
    undefined = np.isnan(c)
    holes = bool(undefined.any())
    products: dict[float, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
    for k in range(factor):
        offset = (k + 0.5) / factor - 0.5  # sub-pixel position relative to its cell centre
        weight = abs(offset)
        if weight not in products:  # sub-pixels k and factor-1-k share their weights
            products[weight] = (c * np.float32(weight), c * np.float32(1.0 - weight))
        near, far = products[weight]  # the neighbour's share, the cell's own share
        dst = out[_along(axis, k, None, factor)]
        if offset > 0:  # neighbour I+1; the last cell has none and keeps its value
            inner, beside, end = _along(axis, 0, n - 1), _along(axis, 1, n), _along(axis, n - 1, n)
        else:  # neighbour I-1; the first cell has none
            inner, beside, end = _along(axis, 1, n), _along(axis, 0, n - 1), _along(axis, 0, 1)
        mixed = dst[inner]
        np.add(near[beside], far[inner], out=mixed)
        dst[end] = c[end]
        if holes:  # an undefined neighbour drops out (an undefined cell stays undefined)
            np.copyto(mixed, c[inner], where=undefined[beside])
    return out


def zero_nan(x: NDArray[np.floating]) -> NDArray[np.floating]:
    """``x`` with undefined values (NaN) set to 0, in place (the arrays here hold no
    infinities, which ``np.nan_to_num`` would also test for, at twice the cost)."""
    nan = np.isnan(x)
    if nan.any():
        x[nan] = 0.0
    return x


def clamp(x: NDArray[np.floating], low: float, high: float) -> NDArray[np.floating]:
    """``x`` clipped to ``[low, high]`` in place, in its own dtype (NaN stays NaN; cheaper
    than ``np.clip``)."""
    np.maximum(x, x.dtype.type(low), out=x)
    return np.minimum(x, x.dtype.type(high), out=x)
