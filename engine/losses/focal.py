"""Sigmoid focal loss (Lin et al.) per threshold over valid pixels; ``gamma=0`` is plain BCE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.errors import InputError
from engine.losses.base import ThresholdLoss, masked_mean


def focal_terms(logits: Tensor, target: Tensor, gamma: float, alpha: float | None) -> Tensor:
    """Per-pixel focal loss ``alpha_t (1 - p_t)^gamma * BCE``."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        ce = ce * (1 - p_t).pow(gamma)
    if alpha is not None:
        ce = ce * (alpha * target + (1 - alpha) * (1 - target))
    return ce


class FocalLoss(ThresholdLoss):
    """Focal loss; ``alpha`` (weight of the gap class, None = 1) and ``gamma`` (focusing)."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        threshold_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(threshold_weights)
        if gamma < 0 or (alpha is not None and not 0 <= alpha <= 1):
            raise InputError(
                f"Focal loss needs gamma >= 0 and alpha in [0, 1], got {gamma}, {alpha}."
            )
        self.gamma = float(gamma)
        self.alpha = alpha

    def parts(self, logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        value, count = masked_mean(focal_terms(logits, target, self.gamma, self.alpha), valid)
        return {"focal": value, "count": count}


class BCELoss(FocalLoss):
    """Binary cross-entropy over valid pixels (focal loss with ``gamma = 0``)."""

    def __init__(self, threshold_weights: Sequence[float] | None = None) -> None:
        super().__init__(gamma=0.0, alpha=None, threshold_weights=threshold_weights)

    def parts(self, logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        value, count = masked_mean(focal_terms(logits, target, 0.0, None), valid)
        return {"bce": value, "count": count}
