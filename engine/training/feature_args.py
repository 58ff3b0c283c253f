"""Head arguments a model takes from the dataset's feature channels (``ground_residual`` head).

The ``ground_residual`` head corrects the classical method's adaptive heights, so it must know
which input channel holds the adaptive height of each threshold, and (for its closed-canopy
guard) which channel holds the openness and how open the least open training pixels are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.models.config import ModelConfig

OPENNESS_PERCENTILE = 1.0
"""The ground_residual head corrects the classical method only where the forest is at least as
open as the most closed 1 % of the training pixels (fully from twice that openness)."""


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
