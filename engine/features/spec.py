"""Model input channels computed from the DSM alone, the same for tiles, windows and images.

A :class:`FeatureSpec` (recorded in datasets and model files) lists the channels:

* for each window ``w`` of ``windows_m``: the DSM's height above its smoothed minimum over ``w``
  (``(DSM - m_w) / scale_m``) and the slope of that minimum (``|grad m_w|``, m/m);
* the openness of the adaptive classical method (share of open ground nearby, 0..1);
* for each threshold of the model: the adaptive classical method's height above ground
  (``/ scale_m``), so a model starts from the strongest classical answer and learns where it
  is wrong.

Heights are clipped to ``clip_m``, slopes to ``slope_clip``; undefined values and nodata pixels
are 0. Every channel is an exact windowed filter (:mod:`engine.features.filters`), so a window
read with :meth:`FeatureSpec.halo_px` pixels of context (outside the raster = nodata) gives the
whole-image values bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.config.base import Config, positive
from engine.errors import ConfigError
from engine.features.config import AdaptiveParams, Ground
from engine.features.filters import clamp, odd_px, zero_nan
from engine.features.ground import (
    GroundStack,
    adaptive_halo_px,
    adaptive_heights,
    ground_halo_px,
    two_at_a_time,
)

FEATURES_METHOD = "multiscale_ground"


@dataclass
class FeatureSpec(Config):
    """Model input channels (see the module docstring)."""

    method: str = field(default=FEATURES_METHOD, metadata={"help": "Feature method."})
    windows_m: list[float] = field(
        default_factory=lambda: [6.0, 10.0, 18.0, 34.0, 66.0],
        metadata={"help": "Smoothed-minimum windows (m) of the multi-scale channels."},
    )
    thresholds: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={"help": "Thresholds (m) of the adaptive-height channels."},
    )
    adaptive: AdaptiveParams = field(
        default_factory=AdaptiveParams,
        metadata={"help": "Parameters of the adaptive classical method behind those channels."},
    )
    scale_m: float = field(
        default=10.0, metadata={"help": "Divisor (m) of height channels.", "check": positive}
    )
    clip_m: float = field(
        default=50.0, metadata={"help": "Heights are clipped to +-clip_m.", "check": positive}
    )
    slope_clip: float = field(
        default=3.0, metadata={"help": "Slopes are clipped to this (m/m).", "check": positive}
    )

    def validate(self) -> None:
        if self.method != FEATURES_METHOD:
            raise ConfigError(
                f"Unknown feature method {self.method!r}; valid: {FEATURES_METHOD!r}.",
                "The model file may come from a newer engine: update the engine.",
            )
        if not self.windows_m or min(self.windows_m) <= 0:
            raise ConfigError("Feature windows must be positive numbers of metres.")
        self.adaptive.validate()

    @property
    def channels(self) -> int:
        """Number of channels."""
        return 2 * len(self.windows_m) + 1 + len(self.thresholds)

    @property
    def openness_channel(self) -> int:
        """Index of the openness channel."""
        return 2 * len(self.windows_m)

    def channel_names(self) -> list[str]:
        """A short name per channel (model cards, debugging)."""
        names = []
        for w in self.windows_m:
            names += [f"height above min {w:g} m", f"slope of min {w:g} m"]
        names.append("openness")
        names += [f"adaptive height ({t:g} m)" for t in self.thresholds]
        return names

    def halo_px(self, pixel_size: float) -> int:
        """Context each side of a window that makes its channels exact."""
        multi = max(ground_halo_px(Ground(w, 1.0), pixel_size) for w in self.windows_m)
        return max(multi, adaptive_halo_px(self.adaptive, self.thresholds, pixel_size))

    def compute(
        self, values: NDArray[np.floating], valid: NDArray[np.bool_], pixel_size: float
    ) -> NDArray[np.float32]:
        """Channels ``[C, H, W]`` (float32) of a DSM window (values in metres)."""
        stack = GroundStack(values, valid, pixel_size)
        out = np.empty((self.channels, *values.shape), dtype=np.float32)
        stack.prefetch(self.windows_m)

        def multiscale(i: int) -> None:  # channels 2i, 2i + 1
            w = self.windows_m[i]
            height = stack.minimum(w, out=out[2 * i])
            np.subtract(values, height, out=height, dtype=np.float32)
            self._height(height)
            zero_nan(clamp(stack.slope(w, out=out[2 * i + 1]), 0.0, self.slope_clip))

        two_at_a_time(multiscale, range(len(self.windows_m)))
        k = 2 * len(self.windows_m)
        out[k] = stack.openness(self.adaptive)  # kept: the adaptive heights use it too
        zero_nan(out[k])
        adaptive_heights(stack, self.adaptive, self.thresholds, out=out[k + 1 :])
        for band in out[k + 1 :]:
            self._height(band)
        out[:, ~valid] = 0.0
        return out

    def _height(self, h: NDArray[np.float32]) -> None:
        """Heights (m, float32, in place) as a channel: clipped, scaled, 0 where undefined."""
        c = self.clip_m
        clamp(h, -c, c)
        h /= self.scale_m
        zero_nan(h)


def base_channels(spec: FeatureSpec, thresholds: Sequence[float]) -> list[int]:
    """Index of the adaptive-height channel of each of ``thresholds`` (exact matches)."""
    first = 2 * len(spec.windows_m) + 1
    index = {float(t): first + i for i, t in enumerate(spec.thresholds)}
    missing = [t for t in thresholds if float(t) not in index]
    if missing:
        raise ConfigError(
            f"No adaptive-height channel for threshold(s) {missing} (channels: {spec.thresholds})."
        )
    return [index[float(t)] for t in thresholds]


def window_px(spec: FeatureSpec, pixel_size: float) -> list[int]:
    """The windows of the multi-scale channels in pixels."""
    return [odd_px(w, pixel_size) for w in spec.windows_m]
