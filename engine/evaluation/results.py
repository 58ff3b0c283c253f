"""Results of one site x method (x threshold) and their aggregation over sites.

Everything stored is a *count* or a *sum* (confusion counts, object counts, cell sums, nesting
counts, probability histograms, height error sums) plus the list of gap areas, so results of
several sites add up exactly with ``+`` and the metrics of the aggregate are computed from the
pooled counts, never by averaging site metrics. A float layer (probabilities, heights) that some
site lacks is not pooled: the aggregate reports it as absent rather than over part of the area.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import ConfusionCounts, pixel_metrics
from engine.evaluation.gapfraction import CellStats
from engine.evaluation.heights import HeightErrors
from engine.evaluation.nesting import NestingCounts
from engine.evaluation.objects import ObjectCounts
from engine.evaluation.powerlaw import Method, fit_power_law
from engine.evaluation.probability import ProbabilityCounts


def threshold_key(t: float) -> str:
    """Short text for a threshold in metres (``5.0`` -> ``"5"``, ``2.5`` -> ``"2.5"``)."""
    return f"{t:g}"


@dataclass
class BandResult:
    """One threshold of one method on one site (or pooled over sites)."""

    threshold: float
    confusion: ConfusionCounts = field(default_factory=ConfusionCounts)
    objects: ObjectCounts = field(default_factory=ObjectCounts)
    cells: CellStats = field(default_factory=CellStats)
    pred_areas: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    ref_areas: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    probability: ProbabilityCounts | None = None

    def __add__(self, other: BandResult) -> BandResult:
        if self.threshold != other.threshold:
            raise ValueError("Cannot add results of different thresholds.")
        return BandResult(
            self.threshold,
            self.confusion + other.confusion,
            self.objects + other.objects,
            self.cells + other.cells,
            np.concatenate([self.pred_areas, other.pred_areas]),
            np.concatenate([self.ref_areas, other.ref_areas]),
            _both(self.probability, other.probability),
        )

    def to_dict(self, lambda_method: Method = "continuous") -> dict[str, Any]:
        """JSON-ready metrics of this band."""
        pred_fit = fit_power_law(self.pred_areas, method=lambda_method)
        ref_fit = fit_power_law(self.ref_areas, method=lambda_method)
        lam_diff = (
            pred_fit.lambda_ - ref_fit.lambda_
            if pred_fit.lambda_ is not None and ref_fit.lambda_ is not None
            else None
        )
        return {
            "threshold_m": self.threshold,
            "pixel": {**self.confusion.to_dict(), **pixel_metrics(self.confusion)},
            "objects": self.objects.metrics(),
            "gap_fraction": self.cells.metrics(),
            "size_distribution": {
                "pred": pred_fit.to_dict(),
                "ref": ref_fit.to_dict(),
                "lambda_difference": lam_diff,
            },
            "probability": None if self.probability is None else self.probability.metrics(),
        }


@dataclass
class MethodResult:
    """All thresholds of one method (a prediction file, a model or the classical baseline)."""

    method: str
    thresholds: list[float]
    bands: list[BandResult]
    nesting: NestingCounts
    sources: list[str] = field(default_factory=list)
    heights: HeightErrors | None = None

    def __add__(self, other: MethodResult) -> MethodResult:
        if self.thresholds != other.thresholds:
            raise ValueError(f"Method {self.method!r} has different thresholds on different sites.")
        return MethodResult(
            self.method,
            list(self.thresholds),
            [a + b for a, b in zip(self.bands, other.bands, strict=True)],
            self.nesting + other.nesting,
            self.sources + other.sources,
            _both(self.heights, other.heights),
        )

    def band(self, threshold: float) -> BandResult:
        """The result at ``threshold``."""
        return self.bands[self.thresholds.index(threshold)]

    def to_dict(self, lambda_method: Method = "continuous") -> dict[str, Any]:
        """JSON-ready metrics of every threshold plus nesting."""
        return {
            "method": self.method,
            "sources": self.sources,
            "thresholds": [b.to_dict(lambda_method) for b in self.bands],
            "nesting": self.nesting.metrics(),
            "height_error": None if self.heights is None else self.heights.metrics(),
        }


def _both(a: Any, b: Any) -> Any:
    """``a + b`` when both sites have the layer; None otherwise (a partial pool would mislead)."""
    return None if a is None or b is None else a + b


def aggregate(results: list[MethodResult]) -> MethodResult:
    """Sum of a method's results over sites (counts pooled, areas concatenated)."""
    if not results:
        raise ValueError("Nothing to aggregate.")
    total = results[0]
    for r in results[1:]:
        total = total + r
    return total
