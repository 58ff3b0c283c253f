"""``TileDataset``: a torch Dataset over one split of a preprocessed dataset folder.

Arrays are opened with ``np.load(mmap_mode="r")``, so a dataset larger than memory streams from
disk and DataLoader workers share pages. Items are dicts::

    {"image": float32[C, H, W], "target": float32[T, H, W] (0/1), "valid": bool[T, H, W],
     "chm": float32[1, H, W] (NaN = nodata), "thresholds": float32[T]}

Thresholds stored in the manifest use the stored labels (with the dataset's size filters and
nesting). Other thresholds are derived from the reference heights as ``chm <= t`` on valid
pixels (no size filter: components would be cut by the tile edge). ``augment=True`` applies one
of the 8 flips/rotations (dihedral group), identical for every array of an item.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from engine.data.dataset_writer import FORMAT, FORMAT_VERSION
from engine.data.labels import NODATA_LABEL
from engine.errors import InputError


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a dataset folder; :class:`InputError` when absent or foreign."""
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{folder} is not a dataset folder (no manifest.json).",
            "Run 'canopygaps preprocess' first and give its output folder.",
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}).", "Run preprocess again.") from None
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path} is not a canopygaps dataset manifest.", "Run preprocess again.")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"Dataset format version {manifest['format_version']} is newer than this engine reads "
            f"({FORMAT_VERSION}).",
            "Update the engine, or preprocess the data again with this version.",
        )
    return dict(manifest)


def dihedral(array: NDArray[Any], k: int) -> NDArray[Any]:
    """One of the 8 flips/rotations (``k`` in 0..7) of the last two axes."""
    out = np.rot90(array, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return out


class TileDataset(Dataset[dict[str, torch.Tensor]]):
    """Tiles of split ``split`` (``train``, ``val`` or ``test``) of dataset ``folder``."""

    def __init__(
        self,
        folder: str | Path,
        split: str,
        thresholds: Sequence[float] | None = None,
        augment: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        if split not in ("train", "val", "test"):
            raise InputError(f"Unknown split {split!r}.", "Use 'train', 'val' or 'test'.")
        d = self.folder / split
        try:
            self.inputs = np.load(d / "inputs.npy", mmap_mode="r")
            self.labels = np.load(d / "labels.npy", mmap_mode="r")
            self.chm = np.load(d / "chm.npy", mmap_mode="r")
            self.tiles = json.loads((d / "tiles.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"Split '{split}' of dataset {self.folder} is incomplete or corrupt ({exc}).",
                "Run preprocess again.",
            ) from None
        stored = [float(t) for t in self.manifest["thresholds"]]
        self.thresholds = [float(t) for t in (thresholds if thresholds is not None else stored)]
        self._index: list[int | None] = []
        for t in self.thresholds:
            hit = [i for i, s in enumerate(stored) if abs(s - t) < 1e-6]
            self._index.append(hit[0] if hit else None)
        self.augment = augment

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def stored_thresholds(self) -> list[float]:
        """Thresholds whose labels are stored in the dataset."""
        return [float(t) for t in self.manifest["thresholds"]]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        image = np.array(self.inputs[i], dtype=np.float32)
        chm = np.array(self.chm[i], dtype=np.float32)
        labels = np.asarray(self.labels[i])
        finite = np.isfinite(chm[0])
        target = np.empty((len(self.thresholds), *chm.shape[1:]), dtype=np.float32)
        valid = np.empty(target.shape, dtype=bool)
        for k, (t, idx) in enumerate(zip(self.thresholds, self._index, strict=True)):
            if idx is not None:
                valid[k] = labels[idx] != NODATA_LABEL
                target[k] = labels[idx] == 1
            else:
                valid[k] = finite
                with np.errstate(invalid="ignore"):
                    target[k] = finite & (chm[0] <= t)
        if self.augment:
            flip = int(torch.randint(0, 8, (1,)).item())
            image, target, valid, chm = (dihedral(a, flip) for a in (image, target, valid, chm))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "valid": torch.from_numpy(np.ascontiguousarray(valid)),
            "chm": torch.from_numpy(np.ascontiguousarray(chm)),
            "thresholds": torch.tensor(self.thresholds, dtype=torch.float32),
        }
