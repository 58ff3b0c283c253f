"""The training loop: forward, loss, backward, clip, step. Everything else is a callback.

:class:`Trainer` owns the model, optimizer, scheduler, AMP settings and a small
:class:`TrainState` (epoch, step, batch inside the epoch). ``fit`` drives epochs built by
:mod:`engine.training.loaders` (order from ``(seed, epoch)``, resumable mid-epoch), ``validate``
and ``test`` return metrics from confusion counts summed over every pixel (and over ranks).
``state_dict``/``load_state_dict`` cover the whole training state for checkpoints. Mixed
precision is resolved by :mod:`engine.training.precision`; the loss's total, components and the
canopy height term come from :mod:`engine.training.loss_terms`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from engine.events import NullReporter, Reporter
from engine.training import distributed as dist
from engine.training.callbacks.base import Callback, StepOutput
from engine.training.loaders import batches_per_epoch, eval_loader, to_device, train_loader
from engine.training.loss_terms import flat_components, height_l1, loss_parts
from engine.training.metrics import confusion_counts, nesting_counts, summarise
from engine.training.precision import Precision
from engine.training.seed import rng_state, set_rng_state

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]


@dataclass
class TrainState:
    """Where training stands: ``epoch`` in progress, optimizer ``step``s so far, and ``batch``
    (batches of this epoch already done)."""

    epoch: int = 0
    step: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    finished: bool = False


class Trainer:
    """Fits ``model`` with ``loss_fn(logits, target, valid)`` and ``optimizer``.

    ``scheduler_interval`` is 'step' (advance after every optimizer step) or 'epoch' (after
    validation, with the monitored metric for ReduceLROnPlateau). ``world`` describes the DDP
    process group (see :mod:`engine.training.distributed`); the model is wrapped here.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        scheduler: Any = None,
        scheduler_interval: str = "step",
        scheduler_metric: str = "val_iou",
        callbacks: Sequence[Callback] = (),
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        grad_clip_norm: float | None = None,
        channels_last: bool = False,
        seed: int = 0,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        epochs: int = 1,
        max_steps: int | None = None,
        world: dist.World | None = None,
        reporter: Reporter | None = None,
        height_weight: float = 0.0,
        height_cap_m: float = 30.0,
    ) -> None:
        self.device = torch.device(device)
        self.world = world or dist.World()
        self.channels_last = channels_last
        model = model.to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = model
        self.net = dist.wrap_model(model, self.world, self.device)
        self.optimizer = optimizer
        if isinstance(loss_fn, nn.Module):
            loss_fn = loss_fn.to(self.device)  # may hold buffers or learnt weights (adaptive)
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_metric = scheduler_metric
        self.callbacks = list(callbacks)
        self.precision = Precision.resolve(precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_scaler)
        self.grad_clip_norm = grad_clip_norm if grad_clip_norm and grad_clip_norm > 0 else None
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.epochs = epochs
        self.max_steps = max_steps
        self.reporter = reporter or NullReporter()
        self.height_weight, self.height_cap_m = float(height_weight), float(height_cap_m)
        self.state = TrainState()
        self.should_stop = False
        self._epoch_tiles = 0
        self.steps_per_epoch = 1
        self.thresholds: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.val_counts: torch.Tensor | None = None
        self.val_sample: dict[str, torch.Tensor] | None = None

    # -- small helpers ----------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        total = self.steps_per_epoch * self.epochs
        return min(total, self.max_steps) if self.max_steps else total

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def log(self, message: str, level: str = "info") -> None:
        if self.world.is_main:
            self.reporter.log(message, level)

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            if cb.main_process_only and not self.world.is_main:
                continue
            getattr(cb, hook)(self, *args)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.precision.dtype)

    def _forward(self, net: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        thresholds = batch["thresholds"][0]
        height = None
        with self.autocast():
            if self.height_weight > 0:
                logits, height = net(batch["image"], thresholds, with_height=True)
            else:
                logits = net(batch["image"], thresholds)
        logits = logits.float()
        out = self.loss_fn(logits, batch["target"], batch["valid"])
        if height is None:
            return logits, out
        total, parts = loss_parts(out, self.loss_fn)
        l1 = height_l1(height.float(), batch["chm"], self.height_cap_m)
        return logits, (total + self.height_weight * l1, {**parts, "height_l1": l1})

    # -- training ---------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> StepOutput:
        """One optimizer step on ``batch`` (already on the device)."""
        self.net.train()
        _, out = self._forward(self.net, batch)
        loss, components = loss_parts(out, self.loss_fn)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.grad_clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])  # type: ignore[misc]
        scale = self.scaler.get_scale() if self.precision.use_scaler else None
        lr = self.lr
        self.scaler.step(self.optimizer)
        self.scaler.update()
        skipped = scale is not None and self.scaler.get_scale() < scale
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and self.scheduler_interval == "step" and not skipped:
            self.scheduler.step()
        return StepOutput(
            loss=loss.detach(),
            components=flat_components(components, batch["thresholds"][0].tolist()),
            grad_norm=norm.detach(),
            lr=lr,
            batch_size=int(batch["image"].shape[0]),
            skipped=skipped,
        )

    def _train_epoch(self, dataset: Any) -> None:
        loader = train_loader(
            dataset,
            batch_size=self.batch_size,
            seed=self.seed,
            epoch=self.state.epoch,
            skip_batches=self.state.batch,
            num_workers=self.num_workers,
            rank=self.world.rank,
            world_size=self.world.size,
            pin_memory=self.device.type == "cuda",
        )
        for batch in loader:
            out = self.train_step(to_device(batch, self.device, self.channels_last))
            self.state.step += 1
            self.state.batch += 1
            self.state.loss_sum += float(out.loss)
            self.state.loss_count += 1
            self._epoch_tiles += out.batch_size * self.world.size
            self._emit("on_batch_end", out)
            if self.max_steps and self.state.step >= self.max_steps:
                self.should_stop = True
                break

    def fit(self, train_set: Any, val_set: Any = None) -> list[dict[str, Any]]:
        """Train until ``epochs`` (or ``max_steps``, or a callback's stop); returns epoch metrics.

        Starts from ``self.state`` (fresh, or restored by :meth:`load_state_dict`).
        """
        self.thresholds = _thresholds_of(train_set)
        self.steps_per_epoch = batches_per_epoch(len(train_set), self.batch_size, self.world.size)
        self._emit("on_fit_start")
        try:
            while self.state.epoch < self.epochs and not self._stop_agreed():
                self._emit("on_epoch_start")
                t0 = time.monotonic()
                self._epoch_tiles = 0
                if self.state.batch < self.steps_per_epoch:
                    self._train_epoch(train_set)
                complete = self.state.batch >= self.steps_per_epoch
                metrics = self._end_epoch(val_set, time.monotonic() - t0, complete)
                self._emit("on_epoch_end", metrics)
            self.state.finished = True
            self._emit("on_fit_end")
        except BaseException as exc:
            self._emit("on_exception", exc)
            raise
        finally:
            for cb in self.callbacks:
                cb.close()
        return self.history

    def _stop_agreed(self) -> bool:
        return dist.any_true(self.should_stop, self.world, self.device)

    def _end_epoch(self, val_set: Any, seconds: float, complete: bool = True) -> dict[str, Any]:
        """Validate and step epoch schedules; an epoch cut short (``max_steps``) is not advanced."""
        dist.sync_buffers(self.model, self.world)
        train_loss = dist.mean_of(
            self.state.loss_sum, self.state.loss_count, self.world, self.device
        )
        metrics: dict[str, Any] = {
            "epoch": self.state.epoch + 1,
            "step": self.state.step,
            "train_loss": train_loss,
            "lr": self.lr,
            "epoch_seconds": round(seconds, 3),
            "tiles_per_second": round(self._epoch_tiles / max(seconds, 1e-9), 2),
        }
        if val_set is not None:
            metrics.update({f"val_{k}": v for k, v in self.validate(val_set).items()})
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            value = metrics.get(self.scheduler_metric, metrics["train_loss"])
            self.scheduler.step(value)
        if complete:
            self.state.epoch += 1
            self.state.batch = 0
            self.state.loss_sum, self.state.loss_count = 0.0, 0
        self.history.append(metrics)
        return metrics

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, dataset: Any, keep_sample: bool = False) -> dict[str, Any]:
        loader = eval_loader(
            dataset,
            batch_size=self.eval_batch_size,
            seed=self.seed,
            num_workers=self.num_workers,
            rank=self.world.rank,
            world_size=self.world.size,
            pin_memory=self.device.type == "cuda",  # like training: truly asynchronous copies
        )
        thresholds = _thresholds_of(dataset)
        counts = torch.zeros(len(thresholds), 4, dtype=torch.int64, device=self.device)
        nesting = torch.zeros(2, dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        n = 0
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for i, raw in enumerate(loader):
                    batch = to_device(raw, self.device, self.channels_last)
                    logits, out = self._forward(self.model, batch)
                    loss, _ = loss_parts(out, self.loss_fn)
                    loss_sum += loss.double() * batch["image"].shape[0]
                    n += int(batch["image"].shape[0])
                    counts += confusion_counts(logits, batch["target"], batch["valid"])
                    nesting += nesting_counts(logits, batch["valid"], batch["thresholds"][0])
                    if keep_sample and i == 0:
                        k = min(4, logits.shape[0])
                        self.val_sample = {
                            "image": raw["image"][:k],
                            "target": raw["target"][:k],
                            "valid": raw["valid"][:k],
                            "prob": torch.sigmoid(logits[:k]).cpu(),
                        }
                    self._emit("on_validation_batch_end", i)
        finally:
            self.model.train(was_training)
        counts = dist.all_sum(counts, self.world)
        nesting = dist.all_sum(nesting, self.world)
        totals = dist.all_sum(
            torch.stack(
                [loss_sum, torch.tensor(float(n), dtype=torch.float64, device=self.device)]
            ),
            self.world,
        )
        metrics = {"loss": float(totals[0] / totals[1].clamp(min=1))}
        metrics.update(summarise(counts, thresholds, nesting))
        self._last_counts = counts.cpu()
        return metrics

    def validate(self, dataset: Any) -> dict[str, Any]:
        """Metrics on ``dataset`` (keys without prefix: loss, iou, f1, iou_5m, ...)."""
        metrics = self._evaluate(dataset, keep_sample=True)
        self.val_counts = self._last_counts
        self._emit("on_validation_end", metrics)
        return metrics

    def test(self, dataset: Any) -> dict[str, Any]:
        """Like :meth:`validate`, without callbacks; for the held-out split."""
        return self._evaluate(dataset)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (tensors + plain data)."""
        rng_tensors, rng_meta = rng_state()
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "loss": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else {},
            "optimizer": self.optimizer.state_dict(),
            "trainer": asdict(self.state),
            "history": self.history,
            "rng": {"tensors": rng_tensors, "meta": rng_meta},
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.precision.use_scaler:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (e.g. read by ``checkpoint.load_checkpoint``)."""
        self.model.load_state_dict(state["model"])
        if isinstance(self.loss_fn, nn.Module) and state.get("loss"):
            self.loss_fn.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.precision.use_scaler and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(**state["trainer"])
        self.history = list(state.get("history", []))
        by_name = state.get("callbacks", {})
        for cb in self.callbacks:
            if cb.name in by_name:
                cb.load_state_dict(by_name[cb.name])
        set_rng_state(state["rng"]["tensors"], state["rng"]["meta"])


def _thresholds_of(dataset: Any) -> list[float]:
    values = getattr(dataset, "thresholds", None)
    if values is None:
        values = dataset[0]["thresholds"]
    return [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
