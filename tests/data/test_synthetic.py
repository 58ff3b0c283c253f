"""Synthetic scenes: seeded, DSM = DTM + CHM, crowns, gaps and terrain as described."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config.base import from_dict
from engine.data.config import SynthConfig
from engine.data.labels import gap_mask
from engine.data.synthetic import make_scene, terrain
from engine.errors import ConfigError
from engine.io.checks import check_projected
from engine.io.raster import read_array, read_info


def test_scene_is_seeded_and_consistent() -> None:
    cfg = SynthConfig(output=Path("unused"), size=160, seed=7, gaps=5, holes=1)
    a, b = make_scene(cfg), make_scene(cfg)
    np.testing.assert_array_equal(a.dsm, b.dsm)
    c = make_scene(SynthConfig(output=Path("unused"), size=160, seed=8))
    assert not np.array_equal(a.chm, c.chm)
    ok = a.valid
    assert 0 < (~ok).sum() < ok.size  # the nodata hole
    np.testing.assert_allclose(a.dsm[ok], (a.dtm + a.chm)[ok], atol=1e-4)
    assert 30 < np.nanmax(a.chm) <= 35.0 and np.nanmin(a.chm) >= 0
    # every gap centre lies in a gap at 10 m (regrowth is below 8 m)
    mask = gap_mask(a.chm, ok, 10.0)
    for g in a.gaps:
        r, c_ = int(g.row), int(g.col)
        if ok[r, c_]:
            assert mask[r, c_]


def test_terrain_has_relief_and_slope() -> None:
    z = terrain((200, 200), np.random.default_rng(0), pixel_size=2.0, relief_m=40)
    assert z.dtype == np.float32 and z.shape == (200, 200)
    assert np.ptp(z) > 10 and np.abs(np.diff(z, axis=1)).max() < 5  # smooth, but not flat


def test_written_scene_is_projected(scene_dir: Path) -> None:
    info = read_info(scene_dir / "dsm.tif")
    check_projected(info)
    assert info.crs.to_epsg() == 32618 and info.pixel_size == 1.0 and info.nodata == -9999
    dsm, ok = read_array(scene_dir / "dsm.tif")
    assert ok.all() and dsm.dtype == np.float32
    assert len(json.loads((scene_dir / "scene.json").read_text())["gaps"]) == 6


def test_bad_synth_config() -> None:
    with pytest.raises(ConfigError, match="'crs'"):
        from_dict(SynthConfig, {"output": "x", "crs": "EPSG:4326"})
    with pytest.raises(ConfigError, match="crown_height_min"):
        from_dict(SynthConfig, {"output": "x", "crown_height_min": 40})
