"""Callback protocol: the Trainer calls these hooks; behaviour lives in callbacks.

Hook order in one fit::

    on_fit_start
      on_epoch_start
        on_batch_end            (after each optimizer step; trainer.state already advanced)
        on_validation_batch_end (after each validation batch)
        on_validation_end       (metrics of the validation pass)
      on_epoch_end              (epoch metrics; trainer.state points at the next epoch)
    on_fit_end                  (success) | on_exception (failure, cancel)
    close                       (always)

Callbacks with ``main_process_only = True`` (files, terminal, TensorBoard) run on rank 0 only.
``state_dict``/``load_state_dict`` (JSON-able data) go into checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from engine.training.trainer import Trainer


@dataclass
class StepOutput:
    """What one optimizer step produced (tensors stay on the device until someone reads them)."""

    loss: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    grad_norm: torch.Tensor | None = None
    lr: float = 0.0
    batch_size: int = 0
    skipped: bool = False  # fp16 scaler skipped the step (inf/nan gradients)


class Callback:
    """Base class: every hook does nothing."""

    main_process_only = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None: ...
    def on_validation_batch_end(self, trainer: Trainer, index: int) -> None: ...
    def on_validation_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...
    def close(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def monitor_mode(metric: str) -> str:
    """'min' for losses and violation rates, 'max' for IoU/F1-like scores."""
    return "min" if ("loss" in metric or "violation" in metric) else "max"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """True when ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``."""
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta
