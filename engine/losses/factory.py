"""Loss registry (``build_loss(name, **kwargs)``) and the ``LossConfig`` of training configs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config.base import Config
from engine.errors import ConfigError
from engine.losses.adaptive import AdaptiveLoss
from engine.losses.base import ThresholdLoss
from engine.losses.combined import FocalDiceLoss
from engine.losses.dice import DiceLoss
from engine.losses.focal import BCELoss, FocalLoss
from engine.losses.weights import inverse_frequency_weights

LOSSES: dict[str, Callable[..., ThresholdLoss]] = {
    "bce": BCELoss,
    "focal": FocalLoss,
    "dice": DiceLoss,
    "focal_dice": FocalDiceLoss,
}


def available_losses() -> list[str]:
    """Names accepted by :func:`build_loss`."""
    return sorted([*LOSSES, "adaptive"])


def _check_kwargs(
    name: str, builder: Callable[..., Any], kwargs: dict[str, Any], extra: Sequence[str] = ()
) -> None:
    valid = [*inspect.signature(builder).parameters, *extra]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"Unknown argument(s) {', '.join(map(repr, unknown))} for loss {name!r}; "
            f"valid arguments: {', '.join(valid)}."
        )


def build_loss(name: str, **kwargs: Any) -> ThresholdLoss:
    """Build loss ``name``.

    ``adaptive`` takes ``base`` (a loss name), ``num_thresholds`` and the base's kwargs.
    """
    if name == "adaptive":
        base_name = kwargs.pop("base", "focal_dice")
        if "num_thresholds" not in kwargs:
            raise ConfigError("The adaptive loss needs num_thresholds.")
        n = int(kwargs.pop("num_thresholds"))
        init = float(kwargs.pop("init_log_var", 0.0))
        if base_name == "adaptive":
            raise ConfigError(
                "The adaptive loss cannot wrap itself; choose base from " + ", ".join(LOSSES)
            )
        return AdaptiveLoss(build_loss(base_name, **kwargs), n, init_log_var=init)
    if name not in LOSSES:
        raise ConfigError(f"Unknown loss {name!r}; valid losses: {', '.join(available_losses())}.")
    _check_kwargs(name, LOSSES[name], kwargs)
    return LOSSES[name](**kwargs)


def _loss_name(value: Any) -> str | None:
    return None if value in LOSSES else f"valid losses: {', '.join(sorted(LOSSES))}."


@dataclass
class LossConfig(Config):
    """Loss settings; ``build(num_thresholds, positive_fraction)`` makes the loss module."""

    name: str = field(
        default="focal_dice",
        metadata={
            "help": "Loss: bce, focal, dice or focal_dice.",
            "check": _loss_name,
            "choices": tuple(LOSSES),
        },
    )
    gamma: float = field(default=2.0, metadata={"help": "Focal loss focusing parameter (0 = BCE)."})
    alpha: float | None = field(
        default=None, metadata={"help": "Focal weight of the gap class in [0, 1] (empty = none)."}
    )
    smooth: float = field(default=1.0, metadata={"help": "Dice smoothing constant."})
    focal_weight: float = field(
        default=1.0, metadata={"help": "Weight of the focal term in focal_dice."}
    )
    dice_weight: float = field(
        default=1.0, metadata={"help": "Weight of the Dice term in focal_dice."}
    )
    weighting: Literal["none", "inverse_frequency"] = field(
        default="inverse_frequency",
        metadata={
            "help": "Per-threshold weights: none, or inverse_frequency of gap pixels "
            "(rare thresholds count more)."
        },
    )
    weighting_power: float = field(
        default=0.5, metadata={"help": "Exponent of the inverse frequency weights."}
    )
    max_weight_ratio: float = field(
        default=10.0, metadata={"help": "Cap of largest/smallest threshold weight."}
    )
    threshold_weights: list[float] | None = field(
        default=None, metadata={"help": "Explicit weight per threshold (overrides weighting)."}
    )
    adaptive: bool = field(
        default=False,
        metadata={"help": "Learn per-threshold weights (uncertainty weighting, Kendall et al.)."},
    )
    height_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of an L1 canopy-height term (metres) for models that estimate "
            "height (0 = none).",
            "check": lambda v: None if v >= 0 else "must be 0 or more.",
        },
    )
    height_cap_m: float = field(
        default=30.0,
        metadata={"help": "Heights above this (m) count as this in the height term."},
    )

    def validate(self) -> None:
        if self.gamma < 0:
            raise ConfigError("Config key 'loss.gamma' must be 0 or more.")
        if self.alpha is not None and not 0 <= self.alpha <= 1:
            raise ConfigError("Config key 'loss.alpha' must be between 0 and 1.")

    def weights(
        self, num_thresholds: int, positive_fraction: Sequence[float] | None = None
    ) -> list[float] | None:
        """The fixed threshold weights to use (None = equal)."""
        if self.threshold_weights is not None:
            if len(self.threshold_weights) != num_thresholds:
                raise ConfigError(
                    f"Config key 'loss.threshold_weights' has {len(self.threshold_weights)} values "
                    f"for {num_thresholds} thresholds."
                )
            return list(self.threshold_weights)
        if self.weighting == "inverse_frequency" and positive_fraction is not None:
            if len(positive_fraction) != num_thresholds:
                raise ConfigError(
                    f"Got {len(positive_fraction)} gap fractions for {num_thresholds} thresholds."
                )
            return inverse_frequency_weights(
                positive_fraction, self.weighting_power, self.max_weight_ratio
            )
        return None

    def build(
        self, num_thresholds: int, positive_fraction: Sequence[float] | None = None
    ) -> ThresholdLoss:
        """The loss module; ``positive_fraction`` (gap fraction per threshold) sets the weights.

        Without ``positive_fraction`` inverse_frequency falls back to equal weights.
        """
        kwargs: dict[str, Any] = {
            "threshold_weights": self.weights(num_thresholds, positive_fraction)
        }
        if self.name in ("focal", "focal_dice"):
            kwargs.update(gamma=self.gamma, alpha=self.alpha)
        if self.name in ("dice", "focal_dice"):
            kwargs["smooth"] = self.smooth
        if self.name == "focal_dice":
            kwargs.update(focal_weight=self.focal_weight, dice_weight=self.dice_weight)
        if self.adaptive:
            return build_loss("adaptive", base=self.name, num_thresholds=num_thresholds, **kwargs)
        return build_loss(self.name, **kwargs)
