"""Focal + Dice: pixel-wise calibration from focal, overlap (class-imbalance robust) from Dice."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from engine.losses.base import ThresholdLoss, masked_mean
from engine.losses.dice import soft_dice
from engine.losses.focal import focal_terms


class FocalDiceLoss(ThresholdLoss):
    """``focal_weight * focal + dice_weight * dice`` per threshold."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        smooth: float = 1.0,
        focal_weight: float = 1.0,
        dice_weight: float = 1.0,
        threshold_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(threshold_weights)
        self.gamma, self.alpha, self.smooth = float(gamma), alpha, float(smooth)
        self.focal_weight, self.dice_weight = float(focal_weight), float(dice_weight)

    def parts(self, logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        focal, count = masked_mean(focal_terms(logits, target, self.gamma, self.alpha), valid)
        dice, _ = soft_dice(logits, target, valid, self.smooth)
        return {"focal": focal, "dice": dice, "count": count}

    def combine(self, parts: dict[str, Tensor]) -> Tensor:
        return self.focal_weight * parts["focal"] + self.dice_weight * parts["dice"]
