"""Progress: events to the engine Reporter (plugin, JSON lines) and a plain terminal bar."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from engine.training.callbacks.base import Callback, StepOutput

if TYPE_CHECKING:
    from engine.events import Reporter
    from engine.training.trainer import Trainer


class ReporterProgress(Callback):
    """Reports overall progress (0..1 over all epochs) and polls cancel after every batch.

    ``reporter.progress`` raises :class:`~engine.errors.Cancelled` when the user cancelled; the
    exception propagates out of ``fit``. Runs on every rank so each rank can be cancelled.
    """

    def __init__(self, reporter: Reporter, stage: str = "train") -> None:
        self.reporter, self.stage = reporter, stage

    def _fraction(self, trainer: Trainer) -> float:
        total = max(1, trainer.total_steps)
        return min(1.0, trainer.state.step / total)

    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None:
        self.reporter.progress(self._fraction(trainer), self.stage)

    def on_validation_batch_end(self, trainer: Trainer, index: int) -> None:
        self.reporter.check_cancelled()

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.reporter.progress(self._fraction(trainer), self.stage)


class TerminalProgress(Callback):
    """A one-line ``epoch 2/10 [#####     ] 30/60 loss 0.213 3.1 it/s`` bar (tty only)."""

    main_process_only = True

    def __init__(self, stream: TextIO | None = None, width: int = 24, force: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self._t = time.monotonic()
        self._n = 0

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._t, self._n = time.monotonic(), 0

    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None:
        if not self.enabled:
            return
        self._n += 1
        done, total = trainer.state.batch, max(1, trainer.steps_per_epoch)
        fill = int(self.width * done / total)
        rate = self._n / max(1e-9, time.monotonic() - self._t)
        self.stream.write(
            f"\repoch {trainer.state.epoch + 1}/{trainer.epochs} [{'#' * fill:<{self.width}}] "
            f"{done}/{total} loss {float(out.loss):.4f} {rate:.1f} it/s"
        )
        self.stream.flush()

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
