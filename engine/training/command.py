"""``canopygaps train``: dataset folder in, model file (safetensors + JSON description) out.

:func:`run_train` wires the pieces: datasets (``engine.data.dataset.TileDataset``), model
(``ModelConfig.build``), loss (``engine.losses.build_loss``), optimizer with weight-decay groups,
schedule, callbacks and :class:`~engine.training.trainer.Trainer`; it resumes from the run
folder's last checkpoint and writes the final model file atomically (rank 0 only). A cancel
stops at the next batch and leaves no model file (checkpoints stay, so the run can resume).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine import __version__
from engine.errors import ConfigError, InputError
from engine.events import NullReporter, Reporter
from engine.models.config import ModelConfig
from engine.training.config import TrainConfig

__all__ = ["TrainConfig", "run_train"]

CHECKPOINTS = "checkpoints"


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"Config key 'device' = {name!r} but no CUDA GPU is available to this Python.",
            "Use device: cpu (or auto), or install a CUDA build of torch.",
        )
    return name


def choose_thresholds(
    config: TrainConfig, available: list[float], conditioned: bool
) -> list[float]:
    """``config.thresholds`` (checked against the dataset unless the model is conditioned)."""
    if config.thresholds is None:
        return sorted(available)
    wanted = sorted(float(t) for t in config.thresholds)
    missing = [t for t in wanted if not any(abs(t - a) < 1e-6 for a in available)]
    if missing and not conditioned:
        raise ConfigError(
            f"Config key 'thresholds' = {config.thresholds}: {missing} not in the dataset's "
            "thresholds "
            f"{available}.",
            "Use a subset of the dataset's thresholds, a threshold-conditioned model (film_unet), "
            "or re-run preprocess with these thresholds.",
        )
    return wanted


def build_optimizer(config: TrainConfig, model: Any, loss: Any = None) -> Any:
    """AdamW/SGD over weight-decay groups (no decay on norms, biases, or learnt loss weights)."""
    import torch

    from engine.models.regularisation import param_groups

    opt = config.optimizer
    wd = (
        opt.weight_decay
        if opt.weight_decay is not None
        else config.model.regularisation.weight_decay
    )
    groups = param_groups(model, wd)
    loss_params = (
        [p for p in loss.parameters() if p.requires_grad]
        if isinstance(loss, torch.nn.Module)
        else []
    )
    if loss_params:
        groups.append({"params": loss_params, "weight_decay": 0.0})
    if opt.name == "sgd":
        return torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum, nesterov=opt.momentum > 0)
    return torch.optim.AdamW(groups, lr=opt.lr, betas=(opt.betas[0], opt.betas[1]))


def build_callbacks(config: TrainConfig, run_dir: Path, reporter: Reporter) -> list[Any]:
    """Callbacks in hook order: progress/cancel, early stopping, logs, checkpoints last."""
    from engine.events import ConsoleReporter
    from engine.training import callbacks as cb

    metric = config.early_stopping.metric
    out: list[cb.Callback] = [cb.ReporterProgress(reporter)]
    if config.early_stopping.patience:
        out.append(
            cb.EarlyStopping(
                metric, config.early_stopping.patience, config.early_stopping.min_delta
            )
        )
    out.append(cb.ConsoleLogger())
    out.append(cb.JsonLogger(run_dir / "metrics.jsonl", every_steps=config.log_every_steps))
    if config.tensorboard:
        out.append(
            cb.TensorBoardLogger(run_dir / "tensorboard", every_steps=config.log_every_steps)
        )
    if config.progress_bar and not isinstance(reporter, ConsoleReporter):
        out.append(cb.TerminalProgress())  # a ConsoleReporter already draws a bar
    out.append(
        cb.Checkpointer(
            run_dir / CHECKPOINTS,
            every_steps=config.checkpoint_every_steps,
            every_epochs=config.checkpoint_every_epochs,
            metric=metric,
        )
    )
    return out


def _resume_path(config: TrainConfig, run_dir: Path) -> Path | None:
    from engine.training.callbacks.checkpointing import LAST

    last = run_dir / CHECKPOINTS / LAST
    if config.resume is True and not last.is_file():
        raise ConfigError(
            f"Config key 'resume' = true but there is no checkpoint {last}.",
            "Use resume: auto to start afresh when there is none.",
        )
    return last if config.resume in (True, "auto") and last.is_file() else None


RESUME_FIXED = ("model", "loss", "optimizer", "scheduler", "thresholds", "batch_size")
"""Settings a resumed run cannot change: the checkpoint restores the model, loss, optimizer
(learning rate, betas, weight decay) and scheduler states over the new values, and its data
position counts batches of the old size. ``epochs`` may grow (continue a finished run): the
schedule is then followed for the new length from the restored step."""


def _changes(old: Any, new: Any, key: str) -> list[str]:
    """Dotted keys whose values differ between two plain-data configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            c
            for k in sorted(set(old) | set(new))
            for c in _changes(old.get(k), new.get(k), f"{key}.{k}")
        ]
    return [] if old == new else [f"{key}: {old!r} -> {new!r}"]


def check_resume_settings(config: TrainConfig, saved: Path) -> None:
    """:class:`ConfigError` when resuming with settings of :data:`RESUME_FIXED` changed from
    those of the run that wrote the checkpoint (its ``config.yaml``): they would be overridden
    by the checkpoint, or give a different schedule, while the model file would record them."""
    import yaml

    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return  # nothing recorded to compare with
    if not isinstance(old, dict):
        return
    new = config.to_dict()
    changed = [c for k in RESUME_FIXED if k in old for c in _changes(old[k], new.get(k), k)]
    if changed:
        raise ConfigError(
            "Resuming this run would keep the checkpoint's training state, not these changed "
            f"settings: {'; '.join(changed)}.",
            f"Resume with the run's settings ({saved}), or train afresh with the new ones "
            "(resume: false, or another run_dir).",
        )


def _restore(trainer: Any, path: Path, device: Any) -> None:
    from engine.training.checkpoint import load_checkpoint

    state = load_checkpoint(path, device="cpu")
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InputError(
            f"The checkpoint {path} does not fit this configuration ({str(exc).splitlines()[0]}).",
            "Set resume: false to start afresh, or use another run_dir.",
        ) from exc


def run_train(config: TrainConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train, write ``config.output`` and return paths, metrics per threshold and run facts."""
    import torch

    from engine.data.dataset import TileDataset, read_manifest
    from engine.models.modelfile import ModelDescription, save_model
    from engine.training import distributed as dist
    from engine.training.callbacks.checkpointing import BEST
    from engine.training.checkpoint import load_checkpoint
    from engine.training.schedulers import build_scheduler, interval
    from engine.training.seed import seed_everything
    from engine.training.trainer import Trainer

    reporter = reporter or NullReporter()
    device_name = resolve_device(config.device)
    world = dist.init(torch.device(device_name).type)
    device = dist.device_for(world, device_name) if world.distributed else torch.device(device_name)
    run_dir = config.resolved_run_dir
    try:
        manifest = read_manifest(config.dataset)
        resume_from = _resume_path(config, run_dir)
        if resume_from is not None:
            check_resume_settings(config, run_dir / "config.yaml")
        dist.barrier(world)  # every rank read the old config.yaml before it is replaced
        if world.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            config.save(run_dir / "config.yaml")

        seed_everything(config.seed, config.deterministic)
        stored = [float(t) for t in manifest["thresholds"]]
        probe = with_feature_args(config.model, manifest, stored).build(
            stored, len(manifest.get("channels", [0])), config.batch_size
        )
        thresholds = choose_thresholds(
            config, [float(t) for t in manifest["thresholds"]], probe.conditioned
        )
        train_set = TileDataset(
            config.dataset, "train", thresholds=thresholds, augment=config.augment
        )
        val_set = _optional_split(TileDataset, config.dataset, "val", thresholds)
        test_set = (
            _optional_split(TileDataset, config.dataset, "test", thresholds)
            if config.test
            else None
        )
        in_channels = int(train_set[0]["image"].shape[0])

        seed_everything(config.seed, config.deterministic)
        model_config = with_feature_args(config.model, manifest, thresholds, config.dataset)
        model = model_config.build(thresholds, in_channels, config.batch_size)
        check_height_loss(config, model)
        loss = config.loss.build(len(thresholds), gap_fractions(manifest, thresholds))
        optimizer = build_optimizer(config, model, loss)
        from engine.training.loaders import batches_per_epoch

        steps_per_epoch = batches_per_epoch(len(train_set), config.batch_size, world.size)
        metric = config.early_stopping.metric if val_set is not None else "train_loss"
        from engine.training.callbacks.base import monitor_mode

        scheduler = build_scheduler(
            config.scheduler.name,
            optimizer,
            params=config.scheduler.params,
            steps_per_epoch=steps_per_epoch,
            epochs=config.epochs,
            mode=monitor_mode(metric),
        )
        trainer = Trainer(
            model,
            optimizer,
            loss,
            scheduler=scheduler,
            scheduler_interval=interval(config.scheduler.name),
            scheduler_metric=metric,
            callbacks=build_callbacks(config, run_dir, reporter),
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
        if resume_from is not None:
            _restore(trainer, resume_from, device)
            trainer.log(
                f"Resuming from {resume_from} "
                f"(epoch {trainer.state.epoch + 1}, step {trainer.state.step})."
            )
        trainer.log(
            f"Training {config.model.name} on {len(train_set)} tiles, thresholds {thresholds} m, "
            f"{config.epochs} epochs x {steps_per_epoch} steps on {device} "
            f"({trainer.precision.name})."
        )
        history = trainer.fit(train_set, val_set)

        best = run_dir / CHECKPOINTS / BEST
        weights = "last"
        if val_set is not None and best.is_file():
            trainer.model.load_state_dict(load_checkpoint(best)["model"])
            weights = "best"
        final: dict[str, Any] = {}
        if val_set is not None:
            final["val"] = trainer.test(val_set)
        if test_set is not None:
            final["test"] = trainer.test(test_set)
        result = {
            "model": str(config.output),
            "description": str(config.output.with_suffix(".json")),
            "run_dir": str(run_dir),
            "metrics_log": str(run_dir / "metrics.jsonl"),
            "epochs": trainer.state.epoch,
            "steps": trainer.state.step,
            "weights": weights,
            "stopped_early": trainer.state.epoch < config.epochs,
            "metrics": final,
        }
        if world.is_main:
            description = ModelDescription.from_model(
                model,
                tile_size=manifest.get("tile_size"),
                pixel_size=manifest.get("pixel_size"),
                normalisation=dict(manifest.get("normalisation") or {}),
                features=dict(manifest.get("features") or {}),
                training=_training_summary(
                    config, manifest, train_set, val_set, test_set, history, result
                ),
                metrics=final,
            )
            save_model(config.output, model, description)
            reporter.log(f"Model written to {config.output}.")
        dist.barrier(world)
        return result
    finally:
        dist.shutdown(world)


def with_feature_args(
    model: ModelConfig,
    manifest: dict[str, Any],
    thresholds: list[float],
    dataset: Path | None = None,
) -> ModelConfig:
    """``model`` with the head arguments a ``ground_residual`` head takes from the dataset's
    feature channels: the adaptive-height channel of each threshold and of the height output
    (the threshold nearest 10 m), and the openness guard (:data:`OPENNESS_PERCENTILE` of the
    training pixels of ``dataset``; model arg ``openness_guard: false`` turns it off)."""
    if model.args.get("head") != "ground_residual":
        return model
    from engine.config.base import from_dict
    from engine.features.spec import FeatureSpec, base_channels

    if not manifest.get("features"):
        raise ConfigError(
            "The ground_residual head needs a dataset with feature channels.",
            "Build the dataset with 'features' set (see resources/configs/default-dataset.yaml).",
        )
    spec = from_dict(FeatureSpec, manifest["features"])
    bases = base_channels(spec, thresholds)
    middle = min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - 10.0))
    head_args: dict[str, Any] = {"base_channels": bases, "height_channel": bases[middle]}
    if dataset is not None and model.args.get("openness_guard", 1.0):
        channel = spec.openness_channel
        head_args["openness_channel"] = channel
        head_args["openness_floor"] = openness_floor(dataset, channel, OPENNESS_PERCENTILE)
    args = {k: v for k, v in model.args.items() if k != "openness_guard"}
    return dataclasses.replace(model, args={**args, "head_args": head_args})


OPENNESS_PERCENTILE = 1.0
"""The ground_residual head corrects the classical method only where the forest is at least as
open as the most closed 1 % of the training pixels (fully from twice that openness)."""


def openness_floor(dataset: Path, channel: int, percentile: float, max_tiles: int = 256) -> float:
    """``percentile`` of the openness channel over valid training pixels (evenly spaced tiles)."""
    import numpy as np

    inputs = np.load(dataset / "train" / "inputs.npy", mmap_mode="r")
    labels = np.load(dataset / "train" / "labels.npy", mmap_mode="r")
    step = max(1, len(inputs) // max_tiles)
    values = [
        np.asarray(inputs[i, channel])[np.asarray(labels[i, 0]) != 255]
        for i in range(0, len(inputs), step)
    ]
    flat = np.concatenate(values) if values else np.zeros(0, np.float32)
    return float(np.percentile(flat, percentile)) if flat.size else 0.0


def check_height_loss(config: TrainConfig, model: Any) -> None:
    """A height loss needs a model whose head estimates canopy height."""
    if config.loss.height_weight > 0 and not getattr(model, "estimates_height", False):
        raise ConfigError(
            f"Config key 'loss.height_weight' is {config.loss.height_weight:g} but model "
            f"{config.model.name!r} with head {config.model.args.get('head', 'default')!r} "
            "estimates no canopy height.",
            "Use head height, residual_height or ground_residual, or set loss.height_weight 0.",
        )


def gap_fractions(manifest: dict[str, Any], thresholds: list[float]) -> list[float] | None:
    """Tile-weighted mean gap fraction per threshold over the manifest's sites (None if unknown)."""
    out = []
    sites = [s for s in manifest.get("sites", []) if isinstance(s, dict)]
    for t in thresholds:
        num = den = 0.0
        for site in sites:
            value = (site.get("gap_fraction") or {}).get(f"{t:g}")
            if value is None:
                return None
            weight = float(site.get("tiles", 1) or 1)
            num, den = num + weight * float(value), den + weight
        if den == 0:
            return None
        out.append(num / den)
    return out


def _optional_split(cls: Any, folder: Path, split: str, thresholds: list[float]) -> Any:
    if not (folder / split / "inputs.npy").is_file():
        return None
    ds = cls(folder, split, thresholds=thresholds, augment=False)
    return ds if len(ds) else None


def _training_summary(
    config: TrainConfig,
    manifest: dict[str, Any],
    train_set: Any,
    val_set: Any,
    test_set: Any,
    history: list[dict[str, Any]],
    result: dict[str, Any],
) -> dict[str, Any]:
    return {
        "engine_version": __version__,
        "dataset": {
            "path": str(config.dataset),
            "format_version": manifest.get("format_version"),
            "sites": [
                s.get("name", s.get("site"))
                for s in manifest.get("sites", [])
                if isinstance(s, dict)
            ],
            "tiles": {
                "train": len(train_set),
                "val": len(val_set or []),
                "test": len(test_set or []),
            },
            "label_rule": manifest.get("label_rule"),
            "split": manifest.get("split"),
        },
        "config": config.to_dict(),
        "epochs": result["epochs"],
        "steps": result["steps"],
        "weights": result["weights"],
        "stopped_early": result["stopped_early"],
        "history": history[-1:] if history else [],
    }
