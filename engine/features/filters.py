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
    then exact, whatever the window offset."""
    out = np.asarray(values, dtype=np.float64)
    for axis in (0, 1):
        out = ndimage.uniform_filter1d(out, size, axis=axis, mode="constant", cval=0.0)
        out *= size  # mean -> sum: exact, the mean of integers times their count
        np.rint(out, out=out)
    return out


def box_mean(
    values: NDArray[np.floating],
    defined: NDArray[np.bool_],
    size: int,
    count: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Mean of ``values`` over the defined pixels of each ``size`` square (NaN where none);
    ``count`` (the box sum of ``defined``) may be passed when already known."""
    q = np.multiply(values, MM, dtype=np.float64)
    q[~defined] = 0.0
    np.rint(q, out=q)
    num = box_sum(q, size)
    den = box_sum(defined, size) if count is None else count
    with np.errstate(invalid="ignore", divide="ignore"):
        num /= MM * den
    num[den == 0] = np.nan
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
    filled = np.where(valid, values, np.inf).astype(np.float64)
    low = ndimage.minimum_filter(filled, size=size, mode="constant", cval=np.inf)
    low[~np.isfinite(low)] = np.nan
    return low


def smoothed_minimum(
    values: NDArray[np.floating],
    valid: NDArray[np.bool_],
    window: int,
    smoothing: int,
    count: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Local minimum over ``window`` px, then its mean over ``smoothing`` px at valid pixels
    (``count``: the box sum of ``valid`` over ``smoothing`` px, when already known)."""
    low = local_minimum(values, valid, window)
    if smoothing <= 1:
        return low
    # the minimum is finite wherever the pixel itself is valid, so 'valid' is where it is defined
    return box_mean(low, valid, smoothing, count)


def slope(surface: NDArray[np.float64], pixel_size: float) -> NDArray[np.float32]:
    """Gradient magnitude (m/m, float32) of ``surface``: central differences where both
    neighbours are defined, one-sided where one is, 0 where none (NaN where ``surface`` is)."""
    p = np.pad(surface, 1, constant_values=np.nan)
    centre = p[1:-1, 1:-1]
    total = np.zeros(surface.shape, dtype=np.float64)
    for fwd, bwd in ((p[2:, 1:-1], p[:-2, 1:-1]), (p[1:-1, 2:], p[1:-1, :-2])):
        ahead, behind = fwd - centre, centre - bwd
        g = np.where(
            np.isnan(ahead), behind, np.where(np.isnan(behind), ahead, 0.5 * (ahead + behind))
        )
        np.nan_to_num(g, copy=False, nan=0.0)
        total += g * g
    out = (np.sqrt(total) / pixel_size).astype(np.float32)
    out[np.isnan(surface)] = np.nan
    return out


def pool_minimum(
    values: NDArray[np.floating], valid: NDArray[np.bool_], factor: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Minimum of the valid pixels of each ``factor`` x ``factor`` cell (NaN: none valid), and
    the cells' validity. A last partial row or column of cells counts the missing pixels as
    invalid, as beyond a raster's edge."""
    if factor == 1:
        return np.where(valid, values, np.nan).astype(np.float64), valid.copy()
    h, w = values.shape
    hc, wc = -(-h // factor), -(-w // factor)
    filled = np.full((hc * factor, wc * factor), np.inf)
    filled[:h, :w] = np.where(valid, values, np.inf)
    low = filled.reshape(hc, factor, wc, factor).min(axis=(1, 3))
    ok = np.isfinite(low)
    low[~ok] = np.nan
    return low, ok


def upsample(
    coarse: NDArray[np.floating], factor: int, shape: tuple[int, ...]
) -> NDArray[np.float32]:
    """Bilinear values of a grid of ``factor`` x ``factor`` cells at the centres of the pixels
    of ``shape`` (cell ``I`` holds pixels ``factor*I .. factor*I + factor-1``). Undefined (NaN)
    neighbours, and those beyond the array, drop out with the weights renormalised, so a window
    gives the whole-image values wherever its cells' neighbours are inside it. float32 (heights
    in metres to about 0.1 mm)."""
    out = np.asarray(coarse, dtype=np.float32)
    if factor == 1:
        return out[: shape[0], : shape[1]].copy()
    for axis, size in ((0, shape[0]), (1, shape[1])):
        out = _upsample_axis(out, factor, axis)
        out = out[:size] if axis == 0 else out[:, :size]
    return np.ascontiguousarray(out)


def _upsample_axis(c: NDArray[np.float32], factor: int, axis: int) -> NDArray[np.float32]:
    """One axis of :func:`upsample`: sub-pixel ``k`` of cell ``I`` mixes cell ``I`` with its
    neighbour on the sub-pixel's side, weights by distance; a NaN neighbour drops out."""

    def along(sl: slice) -> tuple[slice, ...]:
        return (sl, slice(None)) if axis == 0 else (slice(None), sl)

    shape = list(c.shape)
    shape[axis] *= factor
    out = np.empty(shape, dtype=np.float32)
    for k in range(factor):
        offset = (k + 0.5) / factor - 0.5  # sub-pixel position relative to its cell centre
        weight = abs(offset)
        mixed = np.full_like(c, np.nan)  # the neighbour on the sub-pixel's side
        if offset > 0:
            mixed[along(slice(None, -1))] = c[along(slice(1, None))]
        else:
            mixed[along(slice(1, None))] = c[along(slice(None, -1))]
        mixed *= np.float32(weight)
        mixed += np.float32(1.0 - weight) * c
        lost = np.isnan(mixed)  # the neighbour (or the cell) is undefined
        if lost.any():
            mixed[lost] = c[lost]
        out[along(slice(k, None, factor))] = mixed
    return out
