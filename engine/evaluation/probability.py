"""Gap-probability metrics from streamed histograms: PR-AUC, Brier score, IoU-optimal cut.

Per threshold, every window adds into a histogram of (probability bin, reference label) pixel
counts plus the exact sum of squared errors ``(p - y)²``; the metrics come once from the
histogram summed over windows and sites, so no full-raster array is needed.

Bins: bin ``k`` of ``B`` holds ``k/B <= p < (k+1)/B`` (``p = 1`` goes to the last bin). ``B`` is a
power of two, so ``p * B`` is exact in float64 and "bin >= j" is exactly ``p >= j/B``: the IoU of
a cut ``c = j/B`` is exact, not an approximation.

- PR-AUC is the average precision (AP) of the gap class, scikit-learn's step sum
  ``sum_j (R_j - R_(j+1)) P_j`` over the cuts ``j/B`` from high to low. Probabilities in one bin
  count as tied, so it equals the AP of the raw probabilities whenever no bin holds two distinct
  values (with ``B = 2048``, values closer than 1/2048 may be merged).
- Brier score = mean ``(p - y)²`` over valid pixels, from the exact sum (not from the bins).
- IoU-optimal cut: the cut ``c`` maximising the IoU of ``p >= c`` vs the reference; where a run
  of neighbouring cuts gives the same best IoU (empty bins between them), its middle is taken.

A pixel counts where the probability is valid and the reference is not nodata (255).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import NODATA

DEFAULT_BINS = 2048


def _check_bins(bins: int) -> None:
    if bins < 2 or bins & (bins - 1):
        raise ValueError(f"The number of probability bins must be a power of two >= 2, not {bins}.")


@dataclass
class ProbabilityCounts:
    """Histogram of one threshold's probabilities by reference label; add to pool windows/sites."""

    positives: NDArray[np.int64]
    negatives: NDArray[np.int64]
    sum_sq_error: float = 0.0

    @classmethod
    def empty(cls, bins: int = DEFAULT_BINS) -> ProbabilityCounts:
        """No pixel yet."""
        _check_bins(bins)
        return cls(np.zeros(bins, np.int64), np.zeros(bins, np.int64), 0.0)

    @property
    def bins(self) -> int:
        """Number of probability bins."""
        return int(self.positives.size)

    @property
    def n(self) -> int:
        """Number of counted pixels."""
        return int(self.positives.sum() + self.negatives.sum())

    def __add__(self, other: ProbabilityCounts) -> ProbabilityCounts:
        if self.bins != other.bins:
            raise ValueError("Cannot add probability histograms with different bins.")
        return ProbabilityCounts(
            self.positives + other.positives,
            self.negatives + other.negatives,
            self.sum_sq_error + other.sum_sq_error,
        )

    def metrics(self) -> dict[str, Any]:
        """Shortcut for :func:`probability_metrics`."""
        return probability_metrics(self)


def probability_counts(
    prob: NDArray[np.floating[Any]],
    valid: NDArray[np.bool_],
    ref: NDArray[np.uint8],
    bins: int = DEFAULT_BINS,
) -> ProbabilityCounts:
    """Histogram of one window: probabilities ``0..1`` vs reference labels (0, 1, 255 = nodata)."""
    _check_bins(bins)
    if prob.shape != ref.shape or valid.shape != ref.shape:
        raise ValueError(f"Probabilities {prob.shape} and reference {ref.shape} shapes differ.")
    ok = valid & (ref != NODATA)
    p = np.where(ok, prob, 0)  # whole strips, no boolean indexing; float32 stays float32
    if not (p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("Probabilities must lie in 0..1.")
    idx = (p * bins).astype(np.int32)  # floor, exact: bins is a power of two
    np.minimum(idx, bins - 1, out=idx)
    y = (ref == 1) & ok
    code = 2 * idx + y  # (bin, label) pairs
    code[~ok] = 2 * bins  # not counted
    hist = np.bincount(code.ravel(), minlength=2 * bins + 1)[: 2 * bins].reshape(bins, 2)
    d = p.astype(np.float64).ravel() - y.ravel()  # 0 where not counted
    return ProbabilityCounts(
        hist[:, 1].astype(np.int64), hist[:, 0].astype(np.int64), float(np.dot(d, d))
    )


def cut_counts(c: ProbabilityCounts) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(tp, fp)`` of every cut ``j/B`` (j = 0..B-1): pixels with ``p >= j/B`` by label."""
    tp = np.cumsum(c.positives[::-1])[::-1]
    fp = np.cumsum(c.negatives[::-1])[::-1]
    return tp, fp


def average_precision(c: ProbabilityCounts) -> float | None:
    """AP of the gap class (step sum over the bin cuts); None without reference gaps."""
    tp, fp = cut_counts(c)
    total = int(tp[0])
    if total == 0:
        return None
    hit = c.positives > 0
    precision = tp[hit] / (tp[hit] + fp[hit])
    return min(1.0, float(np.sum(c.positives[hit] * precision) / total))  # no 1 + 1e-16


def iou_curve(c: ProbabilityCounts) -> NDArray[np.float64] | None:
    """IoU of ``p >= j/B`` for every cut j; None without reference gaps."""
    tp, fp = cut_counts(c)
    total = int(tp[0])
    if total == 0:
        return None
    return np.asarray(tp / (total + fp), dtype=np.float64)  # tp + fp + fn = total + fp


def best_cut(c: ProbabilityCounts) -> tuple[float, float] | None:
    """``(cut, IoU)`` of the IoU-optimal cut (middle of the first run of best cuts)."""
    iou = iou_curve(c)
    if iou is None:
        return None
    hits = np.flatnonzero(iou == iou.max())
    breaks = np.flatnonzero(np.diff(hits) != 1)
    last = int(hits[breaks[0]]) if breaks.size else int(hits[-1])
    j = (int(hits[0]) + last) // 2
    return j / c.bins, float(iou[j])


def probability_metrics(c: ProbabilityCounts) -> dict[str, Any]:
    """PR-AUC, Brier score, IoU-optimal cut (and IoU at 0.5), prevalence; None when undefined."""
    n = c.n
    notes: list[str] = []
    out: dict[str, Any] = {
        "pixels": n,
        "bins": c.bins,
        "prevalence": int(c.positives.sum()) / n if n else None,
        "pr_auc": average_precision(c),
        "brier": c.sum_sq_error / n if n else None,
        "best_cut": None,
        "best_cut_iou": None,
        "iou_at_half": None,
    }
    cut = best_cut(c)
    if cut is not None:
        out["best_cut"], out["best_cut_iou"] = cut
        curve = iou_curve(c)
        assert curve is not None
        out["iou_at_half"] = float(curve[c.bins // 2])
    if n == 0:
        notes.append("no valid pixel in common: every probability metric is undefined")
    elif cut is None:
        notes.append("no reference gap pixel: PR-AUC and the IoU cut are undefined")
    out["notes"] = notes
    return out
