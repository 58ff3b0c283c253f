"""Pixel confusion counts and the metrics derived from them.

Counts are *summed* over every window, site or tile first; metrics are computed once from the
sums (as in segmentation_models_pytorch's ``reduction="micro"``). Averaging per-tile IoUs would
weight a tile with 3 gap pixels like a tile with 3000 and is never done here.

Masks are uint8 label rasters: 0 = canopy, 1 = gap, 255 = nodata. A pixel counts only where
both the prediction and the reference are valid (and an optional extra ``valid`` mask is true).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

NODATA = 255

MetricValue = float | None


@dataclass
class ConfusionCounts:
    """Pixel counts of one binary comparison; add instances to sum windows, sites or tiles."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def total(self) -> int:
        """Number of compared (valid) pixels."""
        return self.tp + self.fp + self.fn + self.tn

    def to_dict(self) -> dict[str, int]:
        """Plain counts for JSON."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}

    def metrics(self) -> dict[str, Any]:
        """Shortcut for :func:`pixel_metrics`."""
        return pixel_metrics(self)


def confusion_counts(
    pred: NDArray[np.uint8], ref: NDArray[np.uint8], valid: NDArray[np.bool_] | None = None
) -> ConfusionCounts:
    """Confusion counts of one window; pixels that are nodata in either mask are skipped."""
    if pred.shape != ref.shape:
        raise ValueError(f"Prediction {pred.shape} and reference {ref.shape} shapes differ.")
    ok = (pred != NODATA) & (ref != NODATA)
    if valid is not None:
        ok &= valid
    p = (pred == 1) & ok
    r = (ref == 1) & ok
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(r)) - tp
    tn = int(np.count_nonzero(ok)) - tp - fp - fn
    return ConfusionCounts(tp, fp, fn, tn)


def summed_counts(
    windows: Iterable[tuple[NDArray[np.uint8], NDArray[np.uint8]]],
) -> ConfusionCounts:
    """Sum of :func:`confusion_counts` over ``(pred, ref)`` windows (the only reduction used)."""
    total = ConfusionCounts()
    for pred, ref in windows:
        total = total + confusion_counts(pred, ref)
    return total


def _ratio(num: float, den: float) -> MetricValue:
    return float(num) / float(den) if den else None


def pixel_metrics(c: ConfusionCounts) -> dict[str, Any]:
    """IoU, F1, precision, recall, accuracy and Cohen's kappa of summed counts.

    Formulas (n = tp + fp + fn + tn):

    - IoU = tp / (tp + fp + fn); F1 = 2 tp / (2 tp + fp + fn)
    - precision = tp / (tp + fp); recall = tp / (tp + fn); accuracy = (tp + tn) / n
    - kappa = (po - pe) / (1 - pe), po = accuracy,
      pe = ((tp + fp)(tp + fn) + (fn + tn)(fp + tn)) / n²

    A metric whose denominator is zero is ``None`` (JSON null) and ``notes`` says why; it never
    raises and never reports a made-up 0 or 1.
    """
    tp, fp, fn, tn = c.tp, c.fp, c.fn, c.tn
    n = c.total
    notes: list[str] = []
    out: dict[str, Any] = {
        "iou": _ratio(tp, tp + fp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "accuracy": _ratio(tp + tn, n),
        "kappa": None,
    }
    if n == 0:
        notes.append("no valid pixel in common: every metric is undefined")
    else:
        if tp + fp + fn == 0:
            notes.append("no gap in prediction or reference: IoU and F1 undefined")
        if tp + fp == 0:
            notes.append("no predicted gap pixel: precision undefined")
        if tp + fn == 0:
            notes.append("no reference gap pixel: recall undefined")
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
        if pe >= 1.0:
            notes.append("chance agreement is 1 (a single class everywhere): kappa undefined")
        else:
            out["kappa"] = (po - pe) / (1.0 - pe)
    out["notes"] = notes
    return out
