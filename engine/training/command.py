"""``canopygaps train``: dataset folder in, model file (safetensors + JSON description) out.

:func:`run_train` is a short pipeline: start the process group, prepare the run folder (resume
checks, ``config.yaml``), choose the thresholds and open the splits
(:mod:`engine.training.datasets`), build the model (with head arguments from the dataset's
features, :mod:`engine.training.feature_args`) and the :class:`~engine.training.trainer.Trainer`
(loss, optimizer, schedule, callbacks: :mod:`engine.training.build`), resume from the run
folder's last checkpoint (:mod:`engine.training.resume`), fit, keep the best weights and write
the model file atomically (rank 0 only, :mod:`engine.training.output`). A cancel stops at the
next batch and leaves no model file (checkpoints stay, so the run can resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.events import NullReporter, Reporter
from engine.training.build import (
    build_callbacks,
    build_optimizer,
    check_height_loss,
    resolve_device,
)
from engine.training.config import TrainConfig
from engine.training.datasets import TrainData, choose_thresholds, gap_fractions, load_splits
from engine.training.feature_args import with_feature_args
from engine.training.output import run_result, write_model_file
from engine.training.resume import CHECKPOINTS, check_resume_settings, restore, resume_path

__all__ = ["TrainConfig", "run_train"]


def run_train(config: TrainConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train, write ``config.output`` and return paths, metrics per threshold and run facts."""
    from engine.data.dataset import read_manifest
    from engine.training import distributed as dist

    reporter = reporter or NullReporter()
    world, device = _start_world(config.device)
    try:
        manifest = read_manifest(config.dataset)
        resume_from = _prepare_run_dir(config, world)
        data = load_splits(config, manifest, _thresholds(config, manifest))
        model = _build_model(config, data)
        trainer = _build_trainer(config, data, model, world, device, reporter)
        if resume_from is not None:
            restore(trainer, resume_from)
            trainer.log(
                f"Resuming from {resume_from} "
                f"(epoch {trainer.state.epoch + 1}, step {trainer.state.step})."
            )
        trainer.log(_start_message(config, data, trainer))
        history = trainer.fit(data.train, data.val)
        result = _finish(config, trainer, data)
        if world.is_main:
            write_model_file(config, model, data, history, result, reporter)
        dist.barrier(world)
        return result
    finally:
        dist.shutdown(world)


def _start_world(device_name: str) -> tuple[Any, Any]:
    """The DDP process group (a single process outside torchrun) and this rank's device."""
    import torch

    from engine.training import distributed as dist

    name = resolve_device(device_name)
    world = dist.init(torch.device(name).type)
    device = dist.device_for(world, name) if world.distributed else torch.device(name)
    return world, device


def _prepare_run_dir(config: TrainConfig, world: Any) -> Path | None:
    """The checkpoint to resume from (its run's settings checked against ``config``); then the
    main rank writes ``config.yaml`` into the run folder."""
    from engine.training import distributed as dist

    run_dir = config.resolved_run_dir
    resume_from = resume_path(config, run_dir)
    if resume_from is not None:
        check_resume_settings(config, run_dir / "config.yaml")
    dist.barrier(world)  # every rank read the old config.yaml before it is replaced
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.yaml")
    return resume_from


def _thresholds(config: TrainConfig, manifest: dict[str, Any]) -> list[float]:
    """The thresholds to train: a probe build of the model says whether it is threshold-
    conditioned (then ``config.thresholds`` need not be in the dataset)."""
    from engine.training.seed import seed_everything

    seed_everything(config.seed, config.deterministic)
    stored = [float(t) for t in manifest["thresholds"]]
    probe = with_feature_args(config.model, manifest, stored).build(
        stored, len(manifest.get("channels", [0])), config.batch_size
    )
    return choose_thresholds(config, stored, probe.conditioned)


def _build_model(config: TrainConfig, data: TrainData) -> Any:
    """The model for the run's thresholds and input channels, seeded, with the head arguments
    the dataset's features give; a height loss is checked against its head."""
    from engine.training.seed import seed_everything

    seed_everything(config.seed, config.deterministic)
    model_config = with_feature_args(config.model, data.manifest, data.thresholds, config.dataset)
    model = model_config.build(data.thresholds, data.in_channels, config.batch_size)
    check_height_loss(config, model)
    return model


def _build_trainer(
    config: TrainConfig, data: TrainData, model: Any, world: Any, device: Any, reporter: Reporter
) -> Any:
    """The :class:`Trainer` with the loss (class balance from the dataset's gap fractions), the
    optimizer, the schedule (monitoring validation, else training loss) and the callbacks."""
    from engine.training.callbacks.base import monitor_mode
    from engine.training.loaders import batches_per_epoch
    from engine.training.schedulers import build_scheduler, interval
    from engine.training.trainer import Trainer

    loss = config.loss.build(len(data.thresholds), gap_fractions(data.manifest, data.thresholds))
    optimizer = build_optimizer(config, model, loss)
    metric = config.early_stopping.metric if data.val is not None else "train_loss"
    scheduler = build_scheduler(
        config.scheduler.name,
        optimizer,
        params=config.scheduler.params,
        steps_per_epoch=batches_per_epoch(len(data.train), config.batch_size, world.size),
        epochs=config.epochs,
        mode=monitor_mode(metric),
    )
    return Trainer(
        model,
        optimizer,
        loss,
        scheduler=scheduler,
        scheduler_interval=interval(config.scheduler.name),
        scheduler_metric=metric,
        callbacks=build_callbacks(config, config.resolved_run_dir, reporter),
        device=device,
        precision=config.precision,
        grad_clip_norm=config.grad_clip_norm,
        channels_last=config.channels_last,
        seed=config.seed,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        epochs=config.epochs,
        max_steps=config.max_steps,
        world=world,
        reporter=reporter,
        height_weight=config.loss.height_weight,
        height_cap_m=config.loss.height_cap_m,
    )


def _start_message(config: TrainConfig, data: TrainData, trainer: Any) -> str:
    """What is trained, on how many tiles and thresholds, for how long, where and how."""
    from engine.training.loaders import batches_per_epoch

    steps = batches_per_epoch(len(data.train), config.batch_size, trainer.world.size)
    return (
        f"Training {config.model.name} on {len(data.train)} tiles, thresholds "
        f"{data.thresholds} m, {config.epochs} epochs x {steps} steps on {trainer.device} "
        f"({trainer.precision.name})."
    )


def _finish(config: TrainConfig, trainer: Any, data: TrainData) -> dict[str, Any]:
    """Load the best checkpoint's weights (when validated), test on the validation and test
    splits, and return the run's result."""
    from engine.training.callbacks.checkpointing import BEST
    from engine.training.checkpoint import load_checkpoint

    best = config.resolved_run_dir / CHECKPOINTS / BEST
    weights = "last"
    if data.val is not None and best.is_file():
        trainer.model.load_state_dict(load_checkpoint(best)["model"])
        weights = "best"
    metrics: dict[str, Any] = {}
    if data.val is not None:
        metrics["val"] = trainer.test(data.val)
    if data.test is not None:
        metrics["test"] = trainer.test(data.test)
    return run_result(config, trainer, weights, metrics)
