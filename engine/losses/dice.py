"""Soft Dice loss per threshold, summed over the batch and valid pixels only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from engine.losses.base import ThresholdLoss


def soft_dice(
    logits: Tensor, target: Tensor, valid: Tensor, smooth: float = 1.0
) -> tuple[Tensor, Tensor]:
    """``1 - (2 sum(p y) + s) / (sum p + sum y + s)`` per threshold ``[T]``, and valid counts."""
    v = valid.to(logits.dtype)
    p = torch.sigmoid(logits) * v
    y = target * v
    dims = (0, 2, 3)
    inter = (p * y).sum(dim=dims)
    denom = p.sum(dim=dims) + y.sum(dim=dims)
    return 1 - (2 * inter + smooth) / (denom + smooth), v.sum(dim=dims)


class DiceLoss(ThresholdLoss):
    """Soft Dice; ``smooth`` keeps empty thresholds (no gap, none predicted) at 0 loss."""

    def __init__(
        self, smooth: float = 1.0, threshold_weights: Sequence[float] | None = None
    ) -> None:
        super().__init__(threshold_weights)
        self.smooth = float(smooth)

    def parts(self, logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        value, count = soft_dice(logits, target, valid, self.smooth)
        return {"dice": value, "count": count}
