"""Training stage of the GPU check (:mod:`bench.gpu_check`): tiles/s of AMP training steps.

The engine's :class:`~engine.training.trainer.Trainer`, wired as ``engine train`` wires it
(:func:`bench.training.build_trainer`: default unet, focal + Dice loss, AdamW, gradient clipping,
augmentation), on the demo dataset (``engine synth`` then ``engine preprocess``), bf16 autocast
and channels-last, for ``warmup + steps`` optimizer steps. Only the steps after the warm-up are
timed (the GPU synchronised at both ends), and training stops early at the stage's deadline.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from bench import workloads
from bench.training import build_trainer
from engine.training.callbacks.base import Callback, StepOutput


class StepTimer(Callback):
    """Times the steps after ``warmup`` and stops training at ``deadline`` (monotonic)."""

    def __init__(self, warmup: int, deadline: float) -> None:
        self.warmup, self.deadline = warmup, deadline
        self.steps = 0
        self.tiles = 0
        self.t0: float | None = None
        self.t1: float | None = None
        self.losses: list[float] = []

    def on_batch_end(self, trainer: Any, out: StepOutput) -> None:
        self.steps += 1
        self.losses.append(float(out.loss))  # the Trainer reads it too: no extra sync
        if self.steps == self.warmup:
            _sync(trainer.device)
            self.t0 = time.perf_counter()
        elif self.steps > self.warmup:
            self.tiles += out.batch_size
            _sync(trainer.device)
            self.t1 = time.perf_counter()
        if time.monotonic() > self.deadline:
            trainer.should_stop = True
            trainer.max_steps = trainer.state.step  # ends the epoch too


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_speed(
    work: Path, device: str, plan: Any, deadline: float, num_workers: int = 0
) -> dict[str, Any]:
    """Tiles/s of ``plan.train_steps`` steps (``plan.train_precision`` autocast, channels-last)
    after ``plan.train_warmup`` untimed ones."""
    import torch

    dataset = workloads.demo_dataset(work, plan.demo_size, plan.train_tile)
    timer = StepTimer(plan.train_warmup, deadline)
    steps = plan.train_warmup + plan.train_steps
    trainer, train_set, summary = build_trainer(
        dataset,
        work,
        device,
        plan.train_precision,
        True,
        plan.train_batch,
        epochs=10**6,
        max_steps=steps,
        callbacks=[timer],
        num_workers=num_workers,
    )
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(train_set, None)
    timed = timer.steps - plan.train_warmup
    seconds = (timer.t1 or 0.0) - (timer.t0 or 0.0)
    finite = all(math.isfinite(v) for v in timer.losses)
    return {
        "dataset": f"{dataset.name} ({len(train_set)} train tiles of {plan.train_tile} px)",
        "steps_total": timer.steps,
        "steps_timed": timed,
        "stopped_at_deadline": timer.steps < steps,
        "seconds_timed": round(seconds, 3),
        "tiles_s": round(timer.tiles / seconds, 2) if seconds > 0 else None,
        "steps_s": round(timed / seconds, 2) if seconds > 0 else None,
        "loss_first": timer.losses[0] if timer.losses else None,
        "loss_last": timer.losses[-1] if timer.losses else None,
        "losses_finite": finite,
        "num_workers": num_workers,
        "gpu_memory_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        **summary,
    }
