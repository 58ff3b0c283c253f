"""Training speed on the demo dataset: tiles per second and seconds per epoch, fp32 vs bf16.

The demo dataset is ``engine synth`` (seed 0) of ``demo_size`` pixels turned into a dataset by
``engine preprocess`` (``train_tile`` tiles, default thresholds and split). Training uses the
engine's own pieces as ``engine train`` wires them (``TrainConfig`` defaults: unet, focal+dice
loss, AdamW with weight-decay groups, gradient clipping, augmentation) and its
:class:`~engine.training.trainer.Trainer`, without callbacks (no logs or checkpoints) and
without validation. Warm-up epochs (one in full mode) run first; each later epoch is one sample
(``epoch_seconds`` as the Trainer measures it: loading, forward, backward, step).
"""

from __future__ import annotations

from typing import Any

from bench import workloads
from bench.common import Context, figure, log

NAME = "training"

VARIANTS = {
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "bf16-channels_last": ("bf16", True),
    "fp32-channels_last": ("fp32", True),
}


def build_trainer(
    dataset: Any,
    work: Any,
    device: str,
    precision: str,
    channels_last: bool,
    batch_size: int,
    epochs: int,
    **trainer_args: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """``(Trainer, train split, config summary)`` as ``engine train`` wires them (TrainConfig
    defaults), without callbacks or validation unless ``trainer_args`` (Trainer keywords such
    as ``callbacks``, ``max_steps``, ``num_workers``) add them."""
    import torch

    from engine.config.base import from_dict
    from engine.data.dataset import TileDataset, read_manifest
    from engine.training.build import build_optimizer
    from engine.training.config import TrainConfig
    from engine.training.datasets import gap_fractions
    from engine.training.seed import seed_everything
    from engine.training.trainer import Trainer

    config = from_dict(
        TrainConfig,
        {
            "dataset": str(dataset),
            "output": str(work / "train" / "unused.safetensors"),
            "precision": precision,
            "channels_last": channels_last,
            "batch_size": batch_size,
            "epochs": epochs,
            "device": device,
            "seed": 0,
        },
    )
    manifest = read_manifest(dataset)
    thresholds = [float(t) for t in manifest["thresholds"]]
    train_set = TileDataset(dataset, "train", thresholds=thresholds, augment=config.augment)
    seed_everything(0)
    model = config.model.build(thresholds, 1, config.batch_size)
    loss = config.loss.build(len(thresholds), gap_fractions(manifest, thresholds))
    optimizer = build_optimizer(config, model, loss)
    trainer = Trainer(
        model,
        optimizer,
        loss,
        device=torch.device(device),
        precision=precision,
        grad_clip_norm=config.grad_clip_norm,
        channels_last=channels_last,
        seed=0,
        batch_size=config.batch_size,
        epochs=epochs,
        **trainer_args,
    )
    summary = {
        "model": config.model.name,
        "model_args": getattr(model, "args", {}),
        "loss": config.loss.name,
        "optimizer": config.optimizer.name,
        "batch_size": config.batch_size,
        "precision": trainer.precision.name,
        "channels_last": channels_last,
        "device": device,
        "threads": torch.get_num_threads(),
    }
    return trainer, train_set, summary


def train_epochs(
    ctx: Context, dataset: Any, device: str, precision: str, channels_last: bool
) -> tuple[list[float], int, dict[str, Any]]:
    """``(seconds of each timed epoch, train tiles, config summary)``."""
    s = ctx.settings
    epochs = s.train_epochs + s.train_warmup_epochs
    trainer, train_set, summary = build_trainer(
        dataset, ctx.work, device, precision, channels_last, s.train_batch, epochs
    )
    history = trainer.fit(train_set, None)
    seconds = [float(h["epoch_seconds"]) for h in history][s.train_warmup_epochs :]
    return seconds, len(train_set), summary


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    cmd = ctx.bench_command(NAME)
    log(f"training: demo dataset ({s.demo_size}^2 px scene, {s.train_tile} px tiles)")
    dataset = workloads.demo_dataset(ctx.work, s.demo_size, s.train_tile)
    figures: list[dict[str, Any]] = []
    notes = [f"demo dataset: {dataset.name} (engine synth seed 0 -> engine preprocess)"]
    for device in ctx.devices:
        base: dict[str, float] = {}
        for variant in s.train_variants:
            precision, channels_last = VARIANTS[variant]
            label = f"{device}.{precision}" + (".channels_last" if channels_last else "")
            log(f"training: {label}")
            seconds, n_tiles, summary = train_epochs(ctx, dataset, device, precision, channels_last)
            common = {"train_tiles": n_tiles, "tile": s.train_tile, **summary}
            tps = [n_tiles / t for t in seconds]
            figures.append(figure(f"{label}.tiles_s", "tiles/s", tps, command=cmd, **common))
            figures.append(
                figure(
                    f"{label}.epoch_seconds", "s", seconds, better="lower", command=cmd, **common
                )
            )
            median = sorted(tps)[len(tps) // 2]
            if precision == "fp32" and not channels_last:
                base["fp32"] = median
            elif "fp32" in base:
                figures.append(
                    figure(
                        f"{label}.speedup_vs_fp32",
                        "x",
                        median / base["fp32"],
                        command=cmd,
                        note="ratio of median tiles/s",
                        **common,
                    )
                )
    return {"figures": figures, "targets": [], "notes": notes}
