"""TensorBoard: scalars per threshold, LR, gradient norm, prediction images, confusion matrices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.errors import require
from engine.training.callbacks.base import Callback, StepOutput
from engine.training.callbacks.logging import step_record

if TYPE_CHECKING:
    from engine.training.trainer import Trainer

_THRESHOLD_KEY = re.compile(r"^(?P<split>train|val|test)_(?P<name>.+)_(?P<t>[0-9.]+m)$")


def metric_tag(key: str) -> str:
    """``val_iou_5m`` -> ``val/iou/5m``; ``val_iou`` -> ``val/iou``; ``lr`` -> ``epoch/lr``."""
    m = _THRESHOLD_KEY.match(key)
    if m:
        return f"{m['split']}/{m['name']}/{m['t']}"
    split, _, rest = key.partition("_")
    if split in ("train", "val", "test") and rest:
        return f"{split}/{rest}"
    return f"epoch/{key}"


def prediction_grid(sample: dict[str, torch.Tensor], thresholds: list[float]) -> torch.Tensor:
    """float[3, H', W'] grid: one row per tile: input, then target | probability per threshold.

    Nodata pixels are drawn red in targets.
    """
    image = sample["image"][:, :1].float()
    lo = image.amin(dim=(1, 2, 3), keepdim=True)
    hi = image.amax(dim=(1, 2, 3), keepdim=True)
    image = (image - lo) / (hi - lo).clamp(min=1e-6)
    rows = []
    for i in range(image.shape[0]):
        cells = [image[i].expand(3, -1, -1)]
        for t in range(len(thresholds)):
            target = sample["target"][i, t].float()
            valid = sample["valid"][i, t].bool()
            rgb = torch.stack(
                [
                    torch.where(valid, target, torch.ones_like(target)),
                    target * valid,
                    target * valid,
                ]
            )
            cells.append(rgb)
            cells.append(sample["prob"][i, t].float().expand(3, -1, -1))
        rows.append(
            torch.cat([torch.nn.functional.pad(c, (1, 1, 1, 1), value=0.5) for c in cells], dim=2)
        )
    return torch.cat(rows, dim=1).clamp(0, 1)


def confusion_image(counts: torch.Tensor, size: int = 32) -> torch.Tensor:
    """float[1, 2*size, 2*size]: the row-normalised 2x2 matrix (rows truth gap/canopy)."""
    tp, fp, fn, tn = (float(v) for v in counts)
    m = torch.tensor([[tp, fn], [fp, tn]], dtype=torch.float32)
    m = m / m.sum(dim=1, keepdim=True).clamp(min=1)
    return m.repeat_interleave(size, 0).repeat_interleave(size, 1).unsqueeze(0)


def confusion_markdown(counts: torch.Tensor, threshold: float) -> str:
    tp, fp, fn, tn = (int(v) for v in counts)
    return (
        f"**gap <= {threshold:g} m** (pixels)\n\n"
        "| truth \\ predicted | gap | canopy |\n|---|---|---|\n"
        f"| gap | {tp} | {fn} |\n| canopy | {fp} | {tn} |\n"
    )


class TensorBoardLogger(Callback):
    """Writes event files to ``log_dir`` with torch's ``SummaryWriter``."""

    main_process_only = True

    def __init__(
        self, log_dir: str | Path, every_steps: int = 10, image_every_epochs: int = 1
    ) -> None:
        self.log_dir = Path(log_dir)
        self.every_steps = max(1, every_steps)
        self.image_every_epochs = image_every_epochs
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        require("tensorboard", "TensorBoard logging", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events beyond a resumed step, so curves do not fold back on themselves.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.state.step or None)

    def on_batch_end(self, trainer: Trainer, out: StepOutput) -> None:
        if self.writer is None or trainer.state.step % self.every_steps:
            return
        step = trainer.state.step
        for key, value in step_record(trainer, out).items():
            if key not in ("step", "epoch"):
                self.writer.add_scalar(f"train/{key}", value, step)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = trainer.state.step
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.writer.add_scalar(metric_tag(key), value, step)
        epoch = trainer.state.epoch
        if self.image_every_epochs and epoch % self.image_every_epochs == 0:
            if trainer.val_sample is not None:
                grid = prediction_grid(trainer.val_sample, trainer.thresholds)
                self.writer.add_image("val/predictions", grid, step, dataformats="CHW")
            if trainer.val_counts is not None:
                for t, counts in zip(trainer.thresholds, trainer.val_counts, strict=False):
                    self.writer.add_image(f"val/confusion/{t:g}m", confusion_image(counts), step)
                    self.writer.add_text(
                        f"val/confusion/{t:g}m", confusion_markdown(counts, t), step
                    )
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
