"""What a finished training run hands back: the result mapping and the model file."""

from __future__ import annotations

from typing import Any

from engine import __version__
from engine.events import Reporter
from engine.training.config import TrainConfig
from engine.training.datasets import TrainData


def run_result(
    config: TrainConfig, trainer: Any, weights: str, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The command's result: paths, epochs and steps done, which weights were kept (``best``
    or ``last``), whether early stopping ended the run, and the final metrics per split."""
    run_dir = config.resolved_run_dir
    return {
        "model": str(config.output),
        "description": str(config.output.with_suffix(".json")),
        "run_dir": str(run_dir),
        "metrics_log": str(run_dir / "metrics.jsonl"),
        "epochs": trainer.state.epoch,
        "steps": trainer.state.step,
        "weights": weights,
        "stopped_early": trainer.state.epoch < config.epochs,
        "metrics": metrics,
    }


def training_summary(
    config: TrainConfig,
    data: TrainData,
    history: list[dict[str, Any]],
    result: dict[str, Any],
) -> dict[str, Any]:
    """The model description's ``training`` entry: engine version, dataset facts, the full
    config, how the run ended and its last epoch's metrics."""
    manifest = data.manifest
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
                "train": len(data.train),
                "val": len(data.val or []),
                "test": len(data.test or []),
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


def write_model_file(
    config: TrainConfig,
    model: Any,
    data: TrainData,
    history: list[dict[str, Any]],
    result: dict[str, Any],
    reporter: Reporter,
) -> None:
    """Write ``config.output`` (weights + description with the dataset's input contract, the
    training summary and the final metrics) atomically, and say so."""
    from engine.models.modelfile import ModelDescription, save_model

    manifest = data.manifest
    description = ModelDescription.from_model(
        model,
        tile_size=manifest.get("tile_size"),
        pixel_size=manifest.get("pixel_size"),
        normalisation=dict(manifest.get("normalisation") or {}),
        features=dict(manifest.get("features") or {}),
        training=training_summary(config, data, history, result),
        metrics=result["metrics"],
    )
    save_model(config.output, model, description)
    reporter.log(f"Model written to {config.output}.")
