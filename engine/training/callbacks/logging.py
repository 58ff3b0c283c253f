"""Metric logs: JSON lines (``metrics.jsonl``) and epoch summaries through the Reporter."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.training.callbacks.base import Callback, StepOutput

if TYPE_CHECKING:
    from engine.training.trainer import Trainer


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def step_record(trainer: Trainer, out: StepOutput) -> dict[str, Any]:
    """Plain-float summary of one step (reads the device tensors: a sync, call sparingly)."""
    rec: dict[str, Any] = {
        "step": trainer.state.step,
        "epoch": trainer.state.epoch,
        "loss": float(out.loss),
        "lr": out.lr,
    }
    if out.grad_norm is not None:
        rec["grad_norm"] = float(out.grad_norm)
    for k, v in out.components.items():
        rec[f"loss_{k}"] = float(v)
    return rec


class JsonLogger(Callback):
    """Appends one JSON object per line to ``path``: ``{"kind": "step"|"epoch", ...}``.

    Steps are logged every ``every_steps``. On resume, lines from beyond the restored step are
    dropped first, so the log of a resumed run reads like that of an uninterrupted one.
    """

    main_process_only = True

    def __init__(self, path: str | Path, every_steps: int = 10) -> None:
        self.path = Path(path)
        self.every_steps = max(1, every_steps)
        self._t0 = time.monotonic()

    def _write(self, record: dict[str, Any]) -> None:
        record = {k: _clean(v) for k, v in record.items()}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.monotonic()
        if trainer.state.step and self.path.exists():
            kept = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line torn by a kill
                if rec.get("step", 0) <= trainer.state.step:
                    kept.append(line)
            self.path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None:
        if trainer.state.step % self.every_steps == 0:
            rec = step_record(trainer, out)
            self._write({"kind": "step", "time": round(time.monotonic() - self._t0, 3), **rec})

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._write({"kind": "epoch", "step": trainer.state.step, **metrics})


class ConsoleLogger(Callback):
    """One log line per epoch (and optionally every N steps) through ``trainer.log``."""

    main_process_only = True

    def __init__(self, every_steps: int = 0, keys: tuple[str, ...] = ()) -> None:
        self.every_steps = every_steps
        self.keys = keys

    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None:
        if self.every_steps and trainer.state.step % self.every_steps == 0:
            rec = step_record(trainer, out)
            trainer.log(
                f"step {rec['step']}: loss {rec['loss']:.4f} lr {rec['lr']:.3g}"
                + (f" grad_norm {rec['grad_norm']:.3g}" if "grad_norm" in rec else ""),
                level="debug",
            )

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        keys = self.keys or tuple(
            k
            for k in (
                "train_loss",
                "val_loss",
                "val_iou",
                "val_f1",
                "val_nesting_violation_rate",
                "lr",
            )
            if k in metrics
        )
        parts = [f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), (int, float))]
        trainer.log(f"epoch {metrics.get('epoch')}: " + ", ".join(parts))
