"""Window-exact filters of a DSM: smoothed minimum, slope, box fractions.

Every filter here treats pixels outside the array and invalid pixels alike (as missing), and
computes each output pixel from a fixed neighbourhood in a fixed order. So a window read with a
halo of :func:`engine.features.spec.FeatureSpec.halo_px` pixels (outside the raster = nodata)
gives *exactly* the values of a whole-image pass: training tiles, streamed inference windows and
whole images see the same numbers, bit for bit.

Box sums use integer arithmetic (values quantised to millimetres, counts as integers) and
cumulative sums, which is exact whatever the window offset and costs O(1) per pixel for any
window size.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

MM = 1000.0  # quantisation of heights in box sums: 1 mm


def odd_px(metres: float, pixel_size: float) -> int:
    """A window of ``metres`` as an odd number of pixels (at least 1)."""
    n = max(1, round(metres / pixel_size))
    return n if n % 2 else n + 1


def box_sum(values: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Sum over a ``size`` x ``size`` square (``size`` odd) centred on each pixel; zero outside."""
    r = size // 2
    out = values
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        cs = np.cumsum(np.pad(out, pad), axis=axis)
        n = out.shape[axis]
        out = cs[size : size + n] - cs[:n] if axis == 0 else cs[:, size : size + n] - cs[:, :n]
    return out


def box_mean(
    values: NDArray[np.floating], defined: NDArray[np.bool_], size: int
) -> NDArray[np.float64]:
    """Mean of ``values`` over the defined pixels of each ``size`` square (NaN where none)."""
    q = np.where(defined, np.rint(np.where(defined, values, 0.0) * MM), 0).astype(np.int64)
    num = box_sum(q, size)
    den = box_sum(defined.astype(np.int64), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / (MM * np.maximum(den, 1)), np.nan)


def box_fraction(
    flag: NDArray[np.bool_], defined: NDArray[np.bool_], size: int
) -> NDArray[np.float64]:
    """Share of the defined pixels of each ``size`` square where ``flag`` holds (NaN: none)."""
    num = box_sum((flag & defined).astype(np.int64), size)
    den = box_sum(defined.astype(np.int64), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def local_minimum(
    values: NDArray[np.floating], valid: NDArray[np.bool_], size: int
) -> NDArray[np.float64]:
    """Minimum of the valid pixels of each ``size`` square (NaN where none)."""
    filled = np.where(valid, values, np.inf).astype(np.float64)
    low = ndimage.minimum_filter(filled, size=size, mode="constant", cval=np.inf)
    low[~np.isfinite(low)] = np.nan
    return low


def smoothed_minimum(
    values: NDArray[np.floating], valid: NDArray[np.bool_], window: int, smoothing: int
) -> NDArray[np.float64]:
    """Local minimum over ``window`` px, then its mean over ``smoothing`` px at valid pixels."""
    low = local_minimum(values, valid, window)
    if smoothing <= 1:
        return low
    return box_mean(low, valid & np.isfinite(low), smoothing)


def slope(surface: NDArray[np.float64], pixel_size: float) -> NDArray[np.float64]:
    """Gradient magnitude (m/m) of ``surface``: central differences where both neighbours are
    defined, one-sided where one is, 0 where none (NaN where ``surface`` itself is NaN)."""
    grads = []
    for axis in (0, 1):
        fwd = _shift(surface, axis, -1) - surface  # next - this
        bwd = surface - _shift(surface, axis, 1)  # this - previous
        ok_f, ok_b = np.isfinite(fwd), np.isfinite(bwd)
        g = np.where(ok_f & ok_b, 0.5 * (np.where(ok_f, fwd, 0) + np.where(ok_b, bwd, 0)), 0.0)
        g = np.where(ok_f & ~ok_b, fwd, g)
        g = np.where(ok_b & ~ok_f, bwd, g)
        grads.append(g / pixel_size)
    out = np.hypot(grads[0], grads[1])
    out[~np.isfinite(surface)] = np.nan
    return out


def _shift(a: NDArray[np.float64], axis: int, step: int) -> NDArray[np.float64]:
    """``a`` moved by ``step`` along ``axis`` (``out[i] = a[i - step]``), NaN where it leaves."""
    out = np.full_like(a, np.nan)
    n = a.shape[axis]
    src = [slice(None), slice(None)]
    dst = [slice(None), slice(None)]
    if step > 0:
        src[axis], dst[axis] = slice(0, n - step), slice(step, n)
    else:
        src[axis], dst[axis] = slice(-step, n), slice(0, n + step)
    out[tuple(dst)] = a[tuple(src)]
    return out
