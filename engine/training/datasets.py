"""The dataset folder a training run reads: thresholds to train and the train/val/test splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.training.config import TrainConfig


@dataclass
class TrainData:
    """What a run trains on: the dataset's manifest, the thresholds trained (metres), the
    splits (``TileDataset``s; ``val`` and ``test`` are None when absent, empty or not asked)
    and the tiles' input channels."""

    manifest: dict[str, Any]
    thresholds: list[float]
    train: Any
    val: Any
    test: Any
    in_channels: int


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


def optional_split(folder: Path, split: str, thresholds: list[float]) -> Any:
    """The ``split`` of the dataset folder without augmentation; None when absent or empty."""
    from engine.data.dataset import TileDataset

    if not (folder / split / "inputs.npy").is_file():
        return None
    ds = TileDataset(folder, split, thresholds=thresholds, augment=False)
    return ds if len(ds) else None


def load_splits(
    config: TrainConfig, manifest: dict[str, Any], thresholds: list[float]
) -> TrainData:
    """The training split (augmented as configured), validation and, if asked, test split;
    the input channels are read from the first training tile."""
    from engine.data.dataset import TileDataset

    train = TileDataset(config.dataset, "train", thresholds=thresholds, augment=config.augment)
    val = optional_split(config.dataset, "val", thresholds)
    test = optional_split(config.dataset, "test", thresholds) if config.test else None
    in_channels = int(train[0]["image"].shape[0])
    return TrainData(manifest, thresholds, train, val, test, in_channels)
