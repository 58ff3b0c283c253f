"""Stop training when a monitored validation metric stops improving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.training.callbacks.base import Callback, improved, monitor_mode

if TYPE_CHECKING:
    from engine.training.trainer import Trainer


class EarlyStopping(Callback):
    """After ``patience`` epochs without improvement of ``metric`` set ``trainer.should_stop``."""

    def __init__(self, metric: str = "val_iou", patience: int = 5, min_delta: float = 0.0) -> None:
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.mode = monitor_mode(metric)
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.metric not in metrics:
            raise ConfigError(
                f"Config key 'early_stopping.metric' = {self.metric!r} is not a logged metric; "
                f"available: {', '.join(sorted(metrics))}."
            )
        value = float(metrics[self.metric])
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = trainer.state.epoch
            trainer.should_stop = True
            trainer.log(
                f"Early stopping: {self.metric} has not improved for {self.wait} epoch(s) "
                f"(best {self.best:.4f})."
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state.get("best"), int(state.get("wait", 0))
        self.stopped_epoch = state.get("stopped_epoch")
