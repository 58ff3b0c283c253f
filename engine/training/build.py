"""The pieces a training run is built from: device, optimizer, callbacks, and their checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.events import Reporter
from engine.training.config import TrainConfig
from engine.training.resume import CHECKPOINTS


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


def check_height_loss(config: TrainConfig, model: Any) -> None:
    """A height loss needs a model whose head estimates canopy height."""
    if config.loss.height_weight > 0 and not getattr(model, "estimates_height", False):
        raise ConfigError(
            f"Config key 'loss.height_weight' is {config.loss.height_weight:g} but model "
            f"{config.model.name!r} with head {config.model.args.get('head', 'default')!r} "
            "estimates no canopy height.",
            "Use head height, residual_height or ground_residual, or set loss.height_weight 0.",
        )


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
