"""Nesting violations of multi-threshold gap masks.

A gap at height threshold t1 (CHM <= t1) is also a gap at any t2 > t1, so a consistent
prediction is *nested*: ``gap(t1) <= gap(t2)`` pixel by pixel. For each pair of consecutive
thresholds (sorted ascending) a violation is a valid pixel that is gap at the lower threshold
but not at the higher one:

- pair rate = violations / gap pixels at the lower threshold (None if there are none)
- overall rate = pixels with a violation in any pair / valid pixels

Counts add up over windows and sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import NODATA


@dataclass
class NestingCounts:
    """Violation counts per consecutive threshold pair (thresholds ascending)."""

    thresholds: tuple[float, ...] = ()
    violations: list[int] = field(default_factory=list)
    lower_gap: list[int] = field(default_factory=list)
    violating_pixels: int = 0
    valid_pixels: int = 0

    def __post_init__(self) -> None:
        k = max(len(self.thresholds) - 1, 0)
        self.violations = self.violations or [0] * k
        self.lower_gap = self.lower_gap or [0] * k

    def __add__(self, other: NestingCounts) -> NestingCounts:
        if tuple(self.thresholds) != tuple(other.thresholds):
            raise ValueError("Cannot add nesting counts of different thresholds.")
        return NestingCounts(
            tuple(self.thresholds),
            [a + b for a, b in zip(self.violations, other.violations, strict=True)],
            [a + b for a, b in zip(self.lower_gap, other.lower_gap, strict=True)],
            self.violating_pixels + other.violating_pixels,
            self.valid_pixels + other.valid_pixels,
        )

    def metrics(self) -> dict[str, Any]:
        """Per-pair and overall violation rates."""
        pairs = []
        for i, (v, g) in enumerate(zip(self.violations, self.lower_gap, strict=True)):
            pairs.append(
                {
                    "lower_m": self.thresholds[i],
                    "upper_m": self.thresholds[i + 1],
                    "violations": v,
                    "lower_gap_pixels": g,
                    "rate": v / g if g else None,
                }
            )
        rate = self.violating_pixels / self.valid_pixels if self.valid_pixels else None
        return {
            "rate": rate,
            "violating_pixels": self.violating_pixels,
            "valid_pixels": self.valid_pixels,
            "pairs": pairs,
        }


def nesting_counts(stack: NDArray[np.uint8], thresholds: Sequence[float]) -> NestingCounts:
    """Violations of a ``[T, H, W]`` 0/1/255 stack whose band k is at ``thresholds[k]``.

    A pixel is valid where every band is valid.
    """
    if stack.ndim != 3 or stack.shape[0] != len(thresholds):
        raise ValueError(
            f"Expected a [T, H, W] stack with T = {len(thresholds)}, got {stack.shape}."
        )
    order = np.argsort(np.asarray(thresholds, dtype=np.float64), kind="stable")
    s = stack[order]
    valid = np.all(s != NODATA, axis=0)
    gap = (s == 1) & valid
    any_violation = np.zeros(valid.shape, dtype=bool)
    violations, lower = [], []
    for k in range(len(order) - 1):
        v = gap[k] & ~gap[k + 1]
        any_violation |= v
        violations.append(int(np.count_nonzero(v)))
        lower.append(int(np.count_nonzero(gap[k])))
    return NestingCounts(
        tuple(float(thresholds[i]) for i in order),
        violations,
        lower,
        int(np.count_nonzero(any_violation)),
        int(np.count_nonzero(valid)),
    )
