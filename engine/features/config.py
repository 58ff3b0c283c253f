"""Settings of the ground estimates and of the adaptive classical method
(:mod:`engine.features.ground` computes them).

*Ground of window w and slope coefficient c*: the smoothed minimum of the DSM over ``w``
metres, raised by ``c * (w / 2) * |grad|`` of that minimum. *Adaptive method*: per threshold a
small-window and a large-window ground, blended by the local openness of the forest. Parameters
for thresholds between the tabulated ones are interpolated linearly, and held constant beyond
the table's ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.config.base import Config, positive
from engine.errors import ConfigError


@dataclass(frozen=True)
class Ground:
    """One ground estimate: smoothed-minimum window (metres) and slope coefficient."""

    window_m: float
    slope: float = 0.0


@dataclass
class AdaptiveParams(Config):
    """Parameters of the adaptive classical method, tabulated by threshold.

    The defaults were chosen on the seven shared lidar sites without HARV's held-out block
    (``make train-default``'s tuning step, engine 0.2.0), by the selection rule of
    :mod:`engine.features.tune` (README: "The classical method").
    """

    thresholds: list[float] = field(
        default_factory=lambda: [2, 5, 10, 15, 20],
        metadata={"help": "Thresholds (m) of the table below."},
    )
    small_window_m: list[float] = field(
        default_factory=lambda: [14, 18, 18, 18, 18],
        metadata={"help": "Small (open-forest) ground window per threshold (m)."},
    )
    small_slope: list[float] = field(
        default_factory=lambda: [0.75, 0.75, 0.75, 0.75, 0.75],
        metadata={"help": "Slope coefficient of the small window per threshold."},
    )
    large_window_m: list[float] = field(
        default_factory=lambda: [34, 42, 30, 30, 30],
        metadata={"help": "Large (closed-canopy) ground window per threshold (m)."},
    )
    large_slope: list[float] = field(
        default_factory=lambda: [0.75, 0.75, 0.5, 0.5, 0.5],
        metadata={"help": "Slope coefficient of the large window per threshold."},
    )
    openness_window_m: float = field(
        default=82.0,
        metadata={"help": "Window (m) over which openness is measured.", "check": positive},
    )
    openness_low_m: float = field(
        default=3.0,
        metadata={
            "help": "A pixel counts as open ground when at most this high (m).",
            "check": positive,
        },
    )
    openness_ground_window_m: float = field(
        default=30.0,
        metadata={"help": "Window (m) of the reference ground of openness.", "check": positive},
    )
    openness_ground_slope: float = field(
        default=0.5, metadata={"help": "Slope coefficient of the reference ground of openness."}
    )
    open_share: float = field(
        default=0.15,
        metadata={"help": "Openness at which small and large windows weigh the same (0-1)."},
    )
    ramp: float = field(
        default=0.1,
        metadata={"help": "Width of the openness ramp between the two windows (0 = a switch)."},
    )

    def validate(self) -> None:
        n = len(self.thresholds)
        tables = (self.small_window_m, self.small_slope, self.large_window_m, self.large_slope)
        if n == 0 or any(len(v) != n for v in tables):
            raise ConfigError(
                "The adaptive method's tables (small/large window and slope) need one value per "
                f"entry of its 'thresholds' ({n})."
            )
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ConfigError("The adaptive method's 'thresholds' must increase strictly.")
        if min(*self.small_window_m, *self.large_window_m) <= 0:
            raise ConfigError("The adaptive method's windows must be positive (metres).")
        values = [*self.small_slope, *self.large_slope, self.open_share, self.ramp]
        if not all(np.isfinite(values)):
            raise ConfigError("The adaptive method's parameters must be finite numbers.")

    @property
    def openness_ground(self) -> Ground:
        """The reference ground of openness."""
        return Ground(self.openness_ground_window_m, self.openness_ground_slope)

    def at(self, threshold: float) -> tuple[Ground, Ground]:
        """(small, large) ground estimates for ``threshold`` (interpolated in the table)."""
        ts = self.thresholds
        sw, ss, lw, ls = (
            float(np.interp(threshold, ts, v))
            for v in (self.small_window_m, self.small_slope, self.large_window_m, self.large_slope)
        )
        return Ground(sw, ss), Ground(lw, ls)

    def grounds(self, thresholds: Sequence[float]) -> list[Ground]:
        """Every ground estimate the method needs for ``thresholds``."""
        out = [self.openness_ground]
        for t in thresholds:
            out.extend(self.at(t))
        return out
