"""TileDataset: manifest checks and stored labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config.base import from_dict
from engine.data.config import PreprocessConfig
from engine.data.dataset import TileDataset, dihedral, read_manifest
from engine.data.preprocess import run_preprocess
from engine.errors import InputError


def test_dataset_items_and_errors(tmp_path: Path, scene_dir: Path) -> None:
    with pytest.raises(InputError, match="no manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a canopygaps"):
        TileDataset(tmp_path, "train")
    out = tmp_path / "ds"
    site = {"name": "s", "dsm": scene_dir / "dsm.tif", "dtm": scene_dir / "dtm.tif"}
    cfg = from_dict(
        PreprocessConfig,
        {
            "output": str(out),
            "sites": [site],
            "tile_size": 64,
            "thresholds": [2, 10],
            "min_gap_area_m2": 4,
        },
    )
    run_preprocess(cfg)
    ds = TileDataset(out, "train")
    assert len(ds) > 0 and ds.stored_thresholds == [2.0, 10.0]
    item = ds[0]
    stored = np.load(out / "train" / "labels.npy")[0]
    np.testing.assert_array_equal(item["target"].numpy(), (stored == 1).astype(np.float32))
    np.testing.assert_array_equal(item["valid"].numpy(), stored != 255)
    with pytest.raises(InputError, match="Unknown split"):
        TileDataset(out, "holdout")
    with pytest.raises(IndexError):
        ds[len(ds)]
    a = np.arange(6).reshape(1, 2, 3)
    assert len({dihedral(a, k).tobytes() for k in range(8)}) == 8
