"""Validation metrics from confusion counts summed over all pixels (never averaged per tile)."""

from __future__ import annotations

from typing import Any

import torch

TP, FP, FN, TN = 0, 1, 2, 3


def confusion_counts(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """int64[T, 4] = (tp, fp, fn, tn) per threshold over valid pixels; gap = logit > 0."""
    pred = logits.detach() > 0
    truth = target > 0.5
    v = valid.bool()
    dims = [d for d in range(pred.dim()) if d != 1]
    tp = (pred & truth & v).sum(dims)
    fp = (pred & ~truth & v).sum(dims)
    fn = (~pred & truth & v).sum(dims)
    tn = (~pred & ~truth & v).sum(dims)
    return torch.stack([tp, fp, fn, tn], dim=1).to(torch.int64)


def nesting_counts(
    logits: torch.Tensor, valid: torch.Tensor, thresholds: torch.Tensor
) -> torch.Tensor:
    """int64[2] = (violating pixels, pixels checked).

    A gap at threshold t must stay a gap at every higher threshold (CHM <= t implies CHM <= t').
    A pixel violates nesting when its predicted masks, sorted by threshold, are not monotone.
    """
    if logits.shape[1] < 2:
        return torch.zeros(2, dtype=torch.int64, device=logits.device)
    from engine.models.nesting import nesting_violations

    order = torch.argsort(thresholds.to(logits.device))
    all_valid = valid.bool().all(dim=1)
    bad = nesting_violations((logits.detach() > 0)[:, order]) & all_valid
    return torch.stack([bad.sum(), all_valid.sum()]).to(torch.int64)


def _label(t: float) -> str:
    return f"{t:g}m"


def summarise(
    counts: torch.Tensor, thresholds: list[float], nesting: torch.Tensor | None = None
) -> dict[str, Any]:
    """IoU, F1, precision, recall per threshold and their means, plus the nesting-violation rate."""
    c = counts.double().cpu()
    tp, fp, fn = c[:, TP], c[:, FP], c[:, FN]
    iou = tp / (tp + fp + fn).clamp(min=1)
    f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    precision = tp / (tp + fp).clamp(min=1)
    recall = tp / (tp + fn).clamp(min=1)
    out: dict[str, Any] = {"iou": float(iou.mean()), "f1": float(f1.mean())}
    for i, t in enumerate(thresholds):
        out[f"iou_{_label(t)}"] = float(iou[i])
        out[f"f1_{_label(t)}"] = float(f1[i])
        out[f"precision_{_label(t)}"] = float(precision[i])
        out[f"recall_{_label(t)}"] = float(recall[i])
    if nesting is not None:
        n = nesting.double().cpu()
        out["nesting_violation_rate"] = float(n[0] / n[1].clamp(min=1))
    return out
