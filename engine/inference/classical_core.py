"""The classical (model-free) gap method on arrays: DSM minus a smoothed local minimum.

``low = minimum filter of the DSM over a square of window_m metres`` (nodata ignored), then
``low`` is smoothed by a box mean over ``smoothing_m`` metres (normalised convolution: only
its values at valid DSM pixels count), and ``height = DSM - low``; gaps are ``height <= t``
(inclusive).

Boundary rule: pixels outside the raster count as nodata (``+inf`` for the minimum, weight 0 for
the mean), so results never depend on what lies beyond the raster edge. A window read
*boundless* with a halo of :func:`halo_px` pixels therefore gives
exactly the whole-image result: the minimum is exact, and the mean uses
``scipy.ndimage.correlate1d`` (a direct weighted sum per pixel in a fixed order, unlike
``uniform_filter``'s running sum whose rounding depends on where the line starts), so streamed
and whole-image heights are equal bit for bit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def odd_px(metres: float, pixel_size: float) -> int:
    """A window of ``metres`` as an odd number of pixels (at least 1)."""
    n = max(1, round(metres / pixel_size))
    return n if n % 2 else n + 1


def halo_px(pixel_size: float, window_m: float, smoothing_m: float) -> int:
    """Context each side that makes a windowed result equal to the whole-image one."""
    return odd_px(window_m, pixel_size) // 2 + (
        odd_px(smoothing_m, pixel_size) // 2 if smoothing_m > 0 else 0
    )


def _box_mean(
    values: NDArray[np.float64], defined: NDArray[np.bool_], size: int
) -> NDArray[np.float64]:
    kernel = np.ones(size, dtype=np.float64)
    num = np.where(defined, values, 0.0)
    den = defined.astype(np.float64)
    for axis in (0, 1):
        num = ndimage.correlate1d(num, kernel, axis=axis, mode="constant", cval=0.0)
        den = ndimage.correlate1d(den, kernel, axis=axis, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1.0), np.nan)


def classical_heights(
    dsm: NDArray[np.floating],
    valid: NDArray[np.bool_],
    pixel_size: float,
    window_m: float = 30.0,
    smoothing_m: float = 10.0,
) -> NDArray[np.float32]:
    """Height above the smoothed local minimum (metres, float32; NaN where ``valid`` is False)."""
    w = odd_px(window_m, pixel_size)
    filled = np.where(valid, dsm, np.inf).astype(np.float32, copy=False)
    low32 = ndimage.minimum_filter(filled, size=w, mode="constant", cval=np.inf)
    del filled
    low = low32.astype(np.float64)
    del low32
    if smoothing_m > 0:
        low = _box_mean(low, valid & np.isfinite(low), odd_px(smoothing_m, pixel_size))
    # in place, same values as np.where(valid & finite(low), dsm (float64) - low, NaN)
    ok = valid & np.isfinite(low)
    heights = dsm.astype(np.float64)
    heights -= low
    del low
    heights[~ok] = np.nan
    return heights.astype(np.float32)


def gap_masks(heights: NDArray[np.float32], thresholds: list[float]) -> NDArray[np.uint8]:
    """uint8 ``[T, H, W]``: 1 where ``heights <= t``, 0 above, 255 where heights are NaN."""
    out = np.empty((len(thresholds), *heights.shape), dtype=np.uint8)
    nodata = np.isnan(heights)
    for i, t in enumerate(thresholds):
        with np.errstate(invalid="ignore"):
            out[i] = heights <= np.float32(t)
        out[i][nodata] = 255
    return out
