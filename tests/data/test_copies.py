"""Training copies: coarse lidar copies (highest DSM, mean DTM per cell) and their labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config.base import from_dict
from engine.data.config import PreprocessConfig
from engine.data.copies import coarsen, pool_mean, site_copy
from engine.data.preprocess import run_preprocess
from engine.data.sites import prepare_site
from engine.data.synthetic import tilt_surface
from engine.errors import ConfigError


def _config(out: Path, sites: list[dict], **kw: object) -> PreprocessConfig:
    data = {"output": str(out), "sites": sites, "tile_size": 64, "split": {"block_tiles": 1}, **kw}
    return from_dict(PreprocessConfig, data)


def test_pool_mean_matches_a_loop_with_holes_and_partial_cells() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 10, (7, 9)).astype(np.float32)
    values[rng.random((7, 9)) < 0.3] = np.nan
    values[0:3, 0:3] = np.nan  # one cell with no finite pixel
    got = pool_mean(values, 3)
    assert got.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            cell = values[3 * i : 3 * i + 3, 3 * j : 3 * j + 3]
            if np.isfinite(cell).any():
                assert got[i, j] == pytest.approx(np.nanmean(cell.astype(np.float64)))
            else:
                assert np.isnan(got[i, j])


def test_coarsen_keeps_the_highest_surface_and_the_mean_ground() -> None:
    """A 1-pixel opening in 20 m canopy disappears from the coarse DSM (its cell's highest
    value is canopy); a planar DTM comes back as the same plane inside the raster (bilinear
    interpolation of cell means of a plane); a cell without data stays nodata."""
    rows, cols = np.mgrid[0:16, 0:16].astype(np.float32)
    dtm = (100.0 + 0.5 * cols + 0.25 * rows).astype(np.float32)
    dsm = dtm + 20.0
    dsm[7, 7] = dtm[7, 7]  # a 1 m opening down to the ground
    dsm[0:2, 14:16] = np.nan  # one whole 2 x 2 cell without data
    top, ground = coarsen(dsm, dtm, 2)
    chm = top - ground
    assert np.nanmin(chm[5:10, 5:10]) > 19.0  # the opening is gone
    assert np.isnan(top[0:2, 14:16]).all() and np.isfinite(top[2:, :]).all()
    np.testing.assert_allclose(ground[1:-1, 1:-1], dtm[1:-1, 1:-1], atol=1e-4)
    wide = dsm.copy()
    wide[6:10, 6:10] = dtm[6:10, 6:10]  # a 4 x 4 m opening survives at 2 m cells
    top, ground = coarsen(wide, dtm, 2)
    assert (top - ground)[7:9, 7:9].max() < 1.0


def test_coarse_copy_labels_come_from_the_coarse_heights(scene_dir: Path) -> None:
    site = {"name": "syn", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(scene_dir / "dtm.tif")}
    cfg = _config(scene_dir.parent / "unused", [site], terrain_copies=1, coarse_copies=1)
    prep = prepare_site(cfg.sites[0], cfg, 0, [2.0, 5.0])
    tilted, coarse = site_copy(prep, cfg, 0, 1), site_copy(prep, cfg, 0, 2)
    assert tilted.labels is prep.labels and tilted.chm is prep.data.chm
    rng = np.random.default_rng([cfg.seed, 0, 2, 7])  # the coarse copy's own tilt
    dsm = prep.data.dsm + tilt_surface(prep.data.dsm.shape, rng, 1.0, cfg.terrain_max_slope_deg)
    dtm = np.where(prep.data.valid, dsm - prep.data.chm, np.nan)
    top, ground = coarsen(dsm.astype(np.float32), dtm.astype(np.float32), 2)
    ok = coarse.valid
    np.testing.assert_allclose(coarse.chm[ok], (top - ground)[ok], atol=1e-4)
    np.testing.assert_allclose(coarse.dsm[ok], top[ok], atol=1e-4)
    for k, t in enumerate((2.0, 5.0)):
        assert (coarse.labels[k][ok] == 1).tolist() == (coarse.chm[ok] <= t).tolist()
    assert not np.array_equal(coarse.labels, prep.labels)  # the scene's small gaps change


def test_coarse_copies_follow_the_terrain_copies(tmp_path: Path, scene_dir: Path) -> None:
    """Slots ``n .. 2n`` hold the terrain copy, ``2n .. 3n`` the coarse copy (tiles.json marks
    it), whose labels and heights are its own; val and test get no copies."""
    site = {"name": "syn", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(scene_dir / "dtm.tif")}
    out = tmp_path / "ds"
    result = run_preprocess(
        _config(out, [site], thresholds=[2, 5], terrain_copies=1, coarse_copies=1)
    )
    records = json.loads((out / "train" / "tiles.json").read_text())
    n = len(records) // 3
    assert n > 0 and result["counts"]["train"] == 3 * n
    assert records[n:] == [{**r, "terrain_copy": 1} for r in records[:n]] + [
        {**r, "terrain_copy": 2, "coarse": True} for r in records[:n]
    ]
    chm = np.load(out / "train" / "chm.npy")
    np.testing.assert_array_equal(chm[n : 2 * n], chm[:n])
    assert not np.allclose(chm[2 * n :], chm[:n], equal_nan=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["coarse_copies"] == 1 and manifest["coarse_factor"] == 2
    assert len(np.load(out / "val" / "chm.npy")) + len(np.load(out / "test" / "chm.npy")) == (
        sum(result["counts"].values()) - 3 * n
    )


@pytest.mark.parametrize("key,value", [("coarse_copies", -1), ("coarse_factor", 1)])
def test_coarse_settings_out_of_range_are_refused(tmp_path: Path, key: str, value: int) -> None:
    with pytest.raises(ConfigError, match="coarse_"):
        _config(tmp_path, [{"name": "a", "dsm": "x.tif", "dtm": "y.tif"}], **{key: value})
