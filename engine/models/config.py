"""Model settings (torch-free import): the model and regularisation a training config embeds,
and the ``export`` command's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.config.base import Config, at_least, positive
from engine.config.base import non_negative as _non_negative
from engine.errors import ConfigError
from engine.models.registry import available_models

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.models.base import GapModel


def _rate(value: Any) -> str | None:
    return None if value is None or 0.0 <= value < 1.0 else "must be in [0, 1)."


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


ARG_FIELDS: dict[str, dict[str, Any]] = {
    "base_channels": {
        "type": int,
        "help": "Width of the first layer; the model's size grows with its square.",
        "check": at_least(2),
    },
    "depth": {
        "type": int,
        "help": "Down-sampling steps; tile sizes must be a multiple of 2**depth.",
        "check": at_least(1),
    },
}
"""Model arguments every built-in architecture takes, described like config fields (their
defaults are those of the default model's builder); ``ModelConfig.validate`` checks them."""


def _default_args() -> dict[str, Any]:
    """Arguments and defaults of the default model's builder (imports torch)."""
    from engine.models.registry import DEFAULT_MODEL, model_arguments

    return model_arguments(DEFAULT_MODEL)


def _check_args(args: dict[str, Any]) -> None:
    for key, spec in ARG_FIELDS.items():
        if key not in args:
            continue
        value = args[key]
        if not isinstance(value, spec["type"]) or isinstance(value, bool):
            raise ConfigError(f"Config key 'model.args.{key}' must be an integer, got {value!r}.")
        problem = spec["check"](value)
        if problem:
            raise ConfigError(f"Config key 'model.args.{key}' = {value!r}: {problem}")


@dataclass
class ModelConfig(Config):
    """Which model to build: registry ``name`` plus its ``args`` (thresholds come from the data)."""

    name: str = field(
        default="unet",
        metadata={
            "help": "Model name: unet, resunet_attention, film_unet, deeplab_lite.",
            "choices": available_models,
        },
    )
    args: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Model arguments, e.g. {base_channels: 16, depth: 4, head: cumulative}.",
            "fields": ARG_FIELDS,
            "field_defaults": _default_args,
        },
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
        if self.name not in available_models():
            raise ConfigError(
                f"Config key 'model.name' = {self.name!r}; "
                f"valid models: {', '.join(available_models())}."
            )
        for key in ("thresholds", "in_channels", "norm"):
            if key in self.args:
                hint = "set model.norm instead" if key == "norm" else "it is taken from the dataset"
                raise ConfigError(f"Config key 'model.args.{key}' is not allowed here: {hint}.")
        _check_args(self.args)

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


def _positive_or_none(value: Any) -> str | None:
    return None if value is None else positive(value)


@dataclass
class ExportConfig(Config):
    """Settings of the export command."""

    model: Path = field(metadata={"help": "Model file (.safetensors) to export."})
    output: Path | None = field(
        default=None, metadata={"help": "ONNX file to write (default: the model path with .onnx)."}
    )
    tile_size: int | None = field(
        default=None,
        metadata={
            "help": "Tile size of the example input (default: the model's training tile size).",
            "check": _positive_or_none,
        },
    )
    opset: int = field(default=17, metadata={"help": "ONNX opset version."})
    check: bool = field(
        default=True, metadata={"help": "Compare ONNX Runtime with torch on a random tile."}
    )
    tolerance: float = field(
        default=1e-3,
        metadata={"help": "Largest accepted |onnx - torch| logit difference.", "check": positive},
    )

    def validate(self) -> None:
        if not 11 <= self.opset <= 21:
            raise ConfigError(f"Config key 'opset' = {self.opset}: must be between 11 and 21.")
        if self.output is not None and self.output.suffix.lower() != ".onnx":
            raise ConfigError(
                f"Config key 'output' = '{self.output}': the file name must end with .onnx."
            )
