"""The classical (model-free) gap methods on arrays.

* ``adaptive`` (default): the adaptive ground of :mod:`engine.features.ground` - per threshold
  a small-window and a large-window slope-corrected smoothed minimum, blended by the local
  openness of the forest. One height band per threshold.
* ``smoothed_minimum``: ``DSM - mean(minimum(DSM, window_m), smoothing_m)``, no slope term. With
  21 m and 21 m this is *ref21*, the simplest filter a user would write, a named baseline in
  every evaluation. One height band for all thresholds.

Boundary rule (both): pixels outside the raster count as nodata, so a window read *boundless*
with :meth:`ClassicalMethod.halo_px` pixels of context gives exactly the whole-image result
(:mod:`engine.features.filters`): streamed and whole-image heights are equal bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.data.labels import nest_masks
from engine.features.config import AdaptiveParams
from engine.features.filters import odd_px, smoothed_minimum
from engine.features.ground import (
    GroundStack,
    adaptive_halo_px,
    adaptive_heights,
    aligned_origin,
)

METHODS = ("adaptive", "smoothed_minimum")
REF21 = {"method": "smoothed_minimum", "window_m": 21.0, "smoothing_m": 21.0}
"""Settings of the ref21 baseline (``uniform(minimum(dsm, 21 m), 21 m)``)."""


@dataclass
class ClassicalMethod:
    """One classical method with its settings, for a list of thresholds."""

    thresholds: list[float]
    method: str = "adaptive"
    adaptive: AdaptiveParams = field(default_factory=AdaptiveParams)
    window_m: float = 21.0
    smoothing_m: float = 21.0

    def halo_px(self, pixel_size: float) -> int:
        """Context each side that makes a windowed result equal to the whole-image one."""
        if self.method == "adaptive":
            return adaptive_halo_px(self.adaptive, self.thresholds, pixel_size)
        smooth = odd_px(self.smoothing_m, pixel_size) // 2 if self.smoothing_m > 0 else 0
        return odd_px(self.window_m, pixel_size) // 2 + smooth

    @property
    def per_threshold(self) -> bool:
        """True when heights come as one band per threshold."""
        return self.method == "adaptive"

    def height_descriptions(self) -> list[str]:
        """Band descriptions of the heights layer."""
        if self.per_threshold:
            return [f"height above ground for gaps <= {t:g} m (m)" for t in self.thresholds]
        return ["height above the smoothed local minimum (m)"]

    def window(
        self,
        values: NDArray[np.floating],
        valid: NDArray[np.bool_],
        row: int,
        col: int,
        pixel_size: float,
    ) -> NDArray[np.float32]:
        """Heights of the window at ``(row, col)`` from a read with :meth:`halo_px` pixels of
        context each side (outside the raster = nodata); returns ``[K, h, w]`` without it."""
        halo = self.halo_px(pixel_size)
        rows, cols = values.shape[0] - 2 * halo, values.shape[1] - 2 * halo
        if self.method == "adaptive":  # start on the ground grid's cells: drop 0 or 1 rows/cols
            dr, dc = aligned_origin(row - halo), aligned_origin(col - halo)
            r, c = halo - dr, halo - dc
            stack = GroundStack(
                values[dr:, dc:], valid[dr:, dc:], pixel_size, core=(r, r + rows, c, c + cols)
            )  # pixels of the block only: the halo's are never computed
            return adaptive_heights(stack, self.adaptive, self.thresholds)
        h = self.heights(values, valid, pixel_size)
        return np.ascontiguousarray(h[:, halo : halo + rows, halo : halo + cols])

    def heights(
        self, dsm: NDArray[np.floating], valid: NDArray[np.bool_], pixel_size: float
    ) -> NDArray[np.float32]:
        """Heights ``[K, H, W]`` (K = thresholds or 1; float32; NaN where undefined) of an array
        starting on a cell boundary of the raster's ground grid (e.g. the whole raster)."""
        if self.method == "adaptive":
            return adaptive_heights(
                GroundStack(dsm, valid, pixel_size), self.adaptive, self.thresholds
            )
        return smoothed_minimum_heights(dsm, valid, pixel_size, self.window_m, self.smoothing_m)[
            None
        ]


def smoothed_minimum_heights(
    dsm: NDArray[np.floating],
    valid: NDArray[np.bool_],
    pixel_size: float,
    window_m: float = 21.0,
    smoothing_m: float = 21.0,
) -> NDArray[np.float32]:
    """Height above the smoothed local minimum (metres, float32; NaN where undefined)."""
    smooth = odd_px(smoothing_m, pixel_size) if smoothing_m > 0 else 1
    low = smoothed_minimum(dsm, valid, odd_px(window_m, pixel_size), smooth)
    heights = dsm.astype(np.float64) - low
    heights[~(valid & np.isfinite(low))] = np.nan
    return heights.astype(np.float32)


def gap_masks(heights: NDArray[np.float32], thresholds: Sequence[float]) -> NDArray[np.uint8]:
    """uint8 ``[T, H, W]``: 1 where height <= t, 0 above, 255 where heights are NaN.

    ``heights`` is ``[H, W]`` or ``[1, H, W]`` (one height for every threshold) or ``[T, H, W]``
    (one per threshold; the masks are then nested: a gap at one threshold is a gap at every
    higher one, as the reference labels are)."""
    if heights.ndim == 2:
        heights = heights[None]
    bands = [heights[i if len(heights) > 1 else 0] for i in range(len(thresholds))]
    with np.errstate(invalid="ignore"):
        masks = [h <= np.float32(t) for h, t in zip(bands, thresholds, strict=True)]
    if len(heights) > 1:
        masks = nest_masks(masks, thresholds)
    out = np.empty((len(thresholds), *heights.shape[1:]), dtype=np.uint8)
    for k, (mask, h) in enumerate(zip(masks, bands, strict=True)):
        out[k] = mask
        out[k][np.isnan(h)] = 255
    return out
