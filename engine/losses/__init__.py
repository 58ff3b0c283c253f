"""Segmentation losses over thresholds with a validity mask.

``loss(logits[B, T, H, W], target[B, T, H, W] 0/1, valid[B, T, H, W] bool) -> scalar``;
``loss.components`` holds the detached per-threshold parts of the last call.
"""

from __future__ import annotations

from engine.losses.adaptive import AdaptiveLoss
from engine.losses.base import ThresholdLoss
from engine.losses.combined import FocalDiceLoss
from engine.losses.dice import DiceLoss
from engine.losses.factory import LossConfig, available_losses, build_loss
from engine.losses.focal import BCELoss, FocalLoss
from engine.losses.weights import inverse_frequency_weights

__all__ = [
    "AdaptiveLoss",
    "BCELoss",
    "DiceLoss",
    "FocalDiceLoss",
    "FocalLoss",
    "LossConfig",
    "ThresholdLoss",
    "available_losses",
    "build_loss",
    "inverse_frequency_weights",
]
