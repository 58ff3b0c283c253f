"""``TrainConfig``: everything ``canopygaps train --config train.yaml`` accepts.

Strict and typed (:mod:`engine.config.base`): unknown keys, wrong types and bad values raise
:class:`~engine.errors.ConfigError` naming the dotted key. Importing this module does not
import torch. See ``resources/configs/train-example.yaml`` for an annotated example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.config.base import Config, positive
from engine.config.base import non_negative as _non_negative
from engine.errors import ConfigError
from engine.losses import LossConfig
from engine.models.config import ModelConfig
from engine.training.schedulers import SCHEDULERS, check_scheduler


def _device(value: Any) -> str | None:
    ok = value in ("auto", "cpu", "cuda") or (isinstance(value, str) and value.startswith("cuda:"))
    return None if ok else "valid values: 'auto', 'cpu', 'cuda' or 'cuda:N'."


def _resume(value: Any) -> str | None:
    return (
        None if isinstance(value, bool) or value == "auto" else "valid values: true, false, 'auto'."
    )


def _safetensors(value: Any) -> str | None:
    return (
        None
        if Path(value).suffix.lower() == ".safetensors"
        else "the model file name must end with .safetensors."
    )


@dataclass
class OptimizerConfig(Config):
    """Optimizer: AdamW (default) or SGD with momentum."""

    name: Literal["adamw", "sgd"] = field(
        default="adamw", metadata={"help": "Optimizer: adamw or sgd."}
    )
    lr: float = field(default=1e-3, metadata={"help": "(Peak) learning rate.", "check": positive})
    weight_decay: float | None = field(
        default=None,
        metadata={
            "help": "Weight decay of conv/linear weights (norms and biases are never decayed); "
            "empty = model.regularisation.weight_decay.",
            "check": lambda v: None if v is None else _non_negative(v),
        },
    )
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum.", "check": _non_negative})
    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.999], metadata={"help": "AdamW betas."}
    )

    def validate(self) -> None:
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError("Config key 'optimizer.betas' must be two numbers in [0, 1).")


@dataclass
class SchedulerConfig(Config):
    """Learning-rate schedule (``engine.training.schedulers``)."""

    name: str = field(
        default="warmup_cosine", metadata={"help": f"Schedule: {', '.join(SCHEDULERS)}."}
    )
    params: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Schedule parameters, e.g. {warmup_epochs: 1, min_lr_ratio: 0.01}."},
    )

    def validate(self) -> None:
        check_scheduler(self.name, self.params)


@dataclass
class EarlyStoppingConfig(Config):
    """Stop when ``metric`` has not improved for ``patience`` epochs (0 = never stop early)."""

    patience: int = field(
        default=0, metadata={"help": "Epochs without improvement; 0 = off.", "check": _non_negative}
    )
    metric: str = field(
        default="val_iou",
        metadata={
            "help": "Monitored metric (also picks the best checkpoint): val_iou, val_f1, "
            "val_loss, val_iou_5m, ..."
        },
    )
    min_delta: float = field(
        default=0.0, metadata={"help": "Smallest change that counts.", "check": _non_negative}
    )


@dataclass
class TrainConfig(Config):
    """Train a gap model on a dataset folder (``canopygaps preprocess``) into a model file."""

    dataset: Path = field(metadata={"help": "Dataset folder written by 'canopygaps preprocess'."})
    output: Path = field(
        metadata={"help": "Model file to write (.safetensors).", "check": _safetensors}
    )
    run_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Folder for logs, checkpoints and TensorBoard; "
            "empty = <output stem>-run next to the output."
        },
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    thresholds: list[float] | None = field(
        default=None,
        metadata={
            "help": "Height thresholds (m) to train: a subset of the dataset's; "
            "empty = all of them."
        },
    )
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    epochs: int = field(default=30, metadata={"help": "Number of epochs.", "check": positive})
    max_steps: int | None = field(
        default=None,
        metadata={"help": "Stop after this many optimizer steps (quick runs); empty = no limit."},
    )
    batch_size: int = field(
        default=8, metadata={"help": "Tiles per batch and device.", "check": positive}
    )
    num_workers: int = field(
        default=0, metadata={"help": "DataLoader worker processes.", "check": _non_negative}
    )
    grad_clip_norm: float | None = field(
        default=1.0, metadata={"help": "Clip the gradient norm to this; empty or 0 = no clipping."}
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={"help": "auto = bf16 on GPUs that support it (else fp16), fp32 on CPU."},
    )
    channels_last: bool = field(
        default=False, metadata={"help": "Channels-last memory layout (faster on GPUs)."}
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "auto, cpu, cuda or cuda:N.",
            "check": _device,
            "choices": ("auto", "cpu", "cuda"),
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of initialisation, data order and augmentation."}
    )
    deterministic: bool = field(
        default=False, metadata={"help": "Use deterministic kernels only (slower)."}
    )
    augment: bool = field(
        default=True, metadata={"help": "Random flips/rotations of training tiles."}
    )
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint_every_steps: int = field(
        default=0,
        metadata={
            "help": "Save the 'last' checkpoint every N steps; 0 = only per epoch.",
            "check": _non_negative,
        },
    )
    checkpoint_every_epochs: int = field(
        default=1,
        metadata={"help": "Save the 'last' checkpoint every N epochs.", "check": _non_negative},
    )
    resume: bool | str = field(
        default="auto",
        metadata={
            "help": "Resume from run_dir/checkpoints/last.safetensors: "
            "true, false or auto (if present).",
            "check": _resume,
        },
    )
    tensorboard: bool = field(default=True, metadata={"help": "Write TensorBoard event files."})
    log_every_steps: int = field(
        default=10, metadata={"help": "Log training scalars every N steps.", "check": positive}
    )
    progress_bar: bool = field(
        default=True, metadata={"help": "Draw a progress bar when stderr is a terminal."}
    )
    test: bool = field(
        default=True, metadata={"help": "Report metrics on the test split at the end (if present)."}
    )

    def validate(self) -> None:
        if self.thresholds is not None:
            if not self.thresholds:
                raise ConfigError("Config key 'thresholds' must not be an empty list.")
            if len(set(self.thresholds)) != len(self.thresholds):
                raise ConfigError(f"Config key 'thresholds' = {self.thresholds} has duplicates.")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError("Config key 'max_steps' must be greater than 0.")
        if self.grad_clip_norm is not None and self.grad_clip_norm < 0:
            raise ConfigError("Config key 'grad_clip_norm' must be 0 or more.")

    @property
    def resolved_run_dir(self) -> Path:
        """``run_dir``, or ``<output folder>/<output stem>-run``."""
        return self.run_dir or self.output.with_name(f"{self.output.stem}-run")
