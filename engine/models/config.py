"""Model and regularisation settings that a training config embeds (torch-free import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.config.base import Config, positive
from engine.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.models.base import GapModel


def _rate(value: Any) -> str | None:
    return None if value is None or 0.0 <= value < 1.0 else "must be in [0, 1)."


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more."


@dataclass
class RegularisationConfig(Config):
    """Composite regularisation applied to a built model (see ``engine.models.regularisation``)."""

    dropout: float | None = field(
        default=None,
        metadata={
            "help": "Spatial dropout rate of every dropout layer (empty = as the model builds it).",
            "check": _rate,
        },
    )
    drop_path: float | None = field(
        default=None,
        metadata={
            "help": "Stochastic depth: largest drop-path rate, rising linearly with depth "
            "(residual models only; empty = as built).",
            "check": _rate,
        },
    )
    weight_decay: float = field(
        default=1e-4,
        metadata={
            "help": "AdamW weight decay of conv/linear weights (not norms or biases).",
            "check": _non_negative,
        },
    )
    spectral_norm: bool = field(
        default=False, metadata={"help": "Spectral normalisation of every convolution."}
    )


@dataclass
class ModelConfig(Config):
    """Which model to build: registry ``name`` plus its ``args`` (thresholds come from the data)."""

    name: str = field(
        default="unet",
        metadata={"help": "Model name: unet, resunet_attention, film_unet, deeplab_lite."},
    )
    args: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Model arguments, e.g. {base_channels: 16, depth: 4, head: cumulative}."},
    )
    norm: Literal["auto", "batch", "group"] = field(
        default="auto",
        metadata={
            "help": "Normalisation: auto = BatchNorm if batch size >= norm_threshold, "
            "else GroupNorm."
        },
    )
    norm_threshold: int = field(
        default=8,
        metadata={"help": "Smallest per-device batch size that gets BatchNorm.", "check": positive},
    )
    regularisation: RegularisationConfig = field(default_factory=RegularisationConfig)

    def validate(self) -> None:
        from engine.models.registry import available_models

        if self.name not in available_models():
            raise ConfigError(
                f"Config key 'model.name' = {self.name!r}; "
                f"valid models: {', '.join(available_models())}."
            )
        for key in ("thresholds", "in_channels", "norm"):
            if key in self.args:
                hint = "set model.norm instead" if key == "norm" else "it is taken from the dataset"
                raise ConfigError(f"Config key 'model.args.{key}' is not allowed here: {hint}.")

    def build(
        self, thresholds: Sequence[float], in_channels: int = 1, batch_size: int | None = None
    ) -> GapModel:
        """Build the model for ``thresholds``/``in_channels`` and apply the regularisation."""
        from engine.models.norm import choose_norm
        from engine.models.registry import build_model
        from engine.models.regularisation import apply_regularisation

        norm = self.norm
        if norm == "auto":
            norm = choose_norm(batch_size, self.norm_threshold) if batch_size else "batch"
        model = build_model(
            self.name, thresholds=list(thresholds), in_channels=in_channels, norm=norm, **self.args
        )
        apply_regularisation(model, self.regularisation)
        return model
