"""Save ``last`` (every N steps and/or epochs) and ``best`` (monitored metric) checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.training.callbacks.base import Callback, StepOutput, improved, monitor_mode
from engine.training.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from engine.training.trainer import Trainer

LAST, BEST = "last.safetensors", "best.safetensors"


class Checkpointer(Callback):
    """Writes full training state atomically to ``folder/last.safetensors`` and ``best``.

    Place it after callbacks whose state it should capture (early stopping).
    """

    main_process_only = True

    def __init__(
        self,
        folder: str | Path,
        every_steps: int = 0,
        every_epochs: int = 1,
        metric: str | None = "val_iou",
        save_best: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.every_steps, self.every_epochs = every_steps, every_epochs
        self.metric = metric
        self.mode = monitor_mode(metric or "")
        self.save_best = save_best and metric is not None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.saved: list[str] = []
        self._last_at: tuple[int, int, int] | None = None

    @property
    def last_path(self) -> Path:
        return self.folder / LAST

    @property
    def best_path(self) -> Path:
        return self.folder / BEST

    def _save(self, trainer: Trainer, path: Path) -> None:
        at = (trainer.state.epoch, trainer.state.step, trainer.state.batch)
        if path.name == LAST and at == self._last_at:
            return  # nothing changed since the last save (e.g. end of epoch, then end of fit)
        save_checkpoint(path, trainer.state_dict())
        if path.name == LAST:
            self._last_at = at
        self.saved.append(path.name)
        trainer.log(f"checkpoint saved step={trainer.state.step} path={path}", level="debug")

    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None:
        if not self.every_steps or trainer.state.step % self.every_steps:
            return
        epoch_save = self.every_epochs and (trainer.state.epoch + 1) % self.every_epochs == 0
        if epoch_save and trainer.state.batch >= trainer.steps_per_epoch:
            return  # the end-of-epoch save follows right after validation
        self._save(trainer, self.last_path)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        is_best = False
        if self.save_best and self.metric in metrics:
            value = float(metrics[self.metric])
            if improved(value, self.best, self.mode):
                self.best, self.best_epoch, is_best = value, trainer.state.epoch, True
        if is_best:
            self._save(trainer, self.best_path)
        if self.every_epochs and trainer.state.epoch % self.every_epochs == 0:
            self._save(trainer, self.last_path)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._save(trainer, self.last_path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
