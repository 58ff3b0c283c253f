"""Test helpers: a seeded in-memory tile dataset, a tiny dataset folder, a tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

THRESHOLDS = (2.0, 5.0, 10.0)


def synthetic_tiles(
    n: int, size: int = 32, thresholds=THRESHOLDS, seed: int = 0
) -> dict[str, np.ndarray]:
    """``n`` DSM-like tiles: canopy 15-30 m with round gaps whose floor is 0-8 m high.

    Returns the dataset-folder arrays: inputs (N,1,H,W) = CHM/10 (0 at nodata), labels
    (N,T,H,W) uint8 0/1/255, chm (N,1,H,W) float32 (NaN at nodata).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    chm = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        h = 15 + 15 * rng.random() + rng.normal(0, 1.5, (size, size))
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.integers(0, size, 2)
            r = rng.integers(3, size // 4)
            floor = rng.uniform(0, 8)
            h = np.where(
                (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, floor + rng.random((size, size)), h
            )
        chm[i, 0] = h
    chm[:, :, :2, :3] = np.nan  # a nodata corner
    nodata = np.isnan(chm)
    inputs = np.where(nodata, 0, chm / 10).astype(np.float32)
    labels = np.stack([(chm[:, 0] <= t).astype(np.uint8) for t in thresholds], axis=1)
    labels[np.broadcast_to(nodata, labels.shape)] = 255
    return {"inputs": inputs, "labels": labels, "chm": chm}


class MemoryTiles(torch.utils.data.Dataset):
    """Same item dict as ``engine.data.dataset.TileDataset``; optional flip augmentation."""

    def __init__(
        self, n: int = 16, size: int = 32, thresholds=THRESHOLDS, seed: int = 0, augment=False
    ):
        arrays = synthetic_tiles(n, size, thresholds, seed)
        self.inputs, self.labels, self.chm = arrays["inputs"], arrays["labels"], arrays["chm"]
        self.thresholds = [float(t) for t in thresholds]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, labels, chm = self.inputs[i], self.labels[i], self.chm[i]
        if self.augment and np.random.random() < 0.5:  # global RNG, seeded per item by the loader
            image, labels, chm = image[:, :, ::-1], labels[:, :, ::-1], chm[:, :, ::-1]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "target": torch.from_numpy((labels == 1).astype(np.float32)),
            "valid": torch.from_numpy(labels != 255),
            "chm": torch.from_numpy(np.ascontiguousarray(chm)),
            "thresholds": torch.tensor(self.thresholds, dtype=torch.float32),
        }


def write_dataset_folder(
    folder: Path,
    n_train: int = 12,
    n_val: int = 4,
    size: int = 32,
    seed: int = 0,
    thresholds=THRESHOLDS,
) -> Path:
    """A tiny dataset folder in the ARCHITECTURE.md format."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, n, s in (
        ("train", n_train, seed),
        ("val", n_val, seed + 1),
        ("test", n_val, seed + 2),
    ):
        arrays = synthetic_tiles(n, size, thresholds, s)
        d = folder / split
        d.mkdir(exist_ok=True)
        for name, arr in arrays.items():
            np.save(d / f"{name}.npy", arr)
        (d / "tiles.json").write_text(
            json.dumps([{"site": "synth", "row": i * size, "col": 0} for i in range(n)])
        )
        counts[split] = n
    manifest = {
        "format": "canopygaps-dataset",
        "format_version": 1,
        "thresholds": list(thresholds),
        "tile_size": size,
        "pixel_size": 1.0,
        "normalisation": {
            "method": "local_low_percentile",
            "window_m": 64.0,
            "percentile": 2.0,
            "scale": 10.0,
            "clip_m": 80.0,
        },
        "label_rule": {"min_area_m2": 0.0, "max_area_m2": None, "connectivity": 8},
        "channels": ["normalised_dsm"],
        "sites": [
            {
                "name": "synth",
                "tiles": n_train,
                "gap_fraction": {f"{t:g}": 0.1 + 0.05 * i for i, t in enumerate(thresholds)},
            }
        ],
        "split": {"method": "random", "counts": counts},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (folder / "config.yaml").write_text("kind: PreprocessConfig\n")
    return folder


class TinyNet(nn.Module):
    """Model-interface stand-in: conv-norm-relu-(dropout)-conv, one logit per threshold."""

    in_channels, depth, conditioned, output_kind = 1, 0, False, "independent"

    def __init__(
        self, channels: int = 4, n_thresholds: int = len(THRESHOLDS), dropout: float = 0.1
    ):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, n_thresholds, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, thresholds: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(x)


def masked_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor):
    """Loss with per-threshold components: (total, {"bce": per-threshold vector})."""
    raw = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    v = valid.float()
    per_t = (raw * v).sum((0, 2, 3)) / v.sum((0, 2, 3)).clamp(min=1)
    return per_t.mean(), {"bce": per_t}
