"""Classical method: streamed == whole image, gaps where the synthetic scene has them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from conftest import smooth_dsm

from engine.api import run
from engine.data.synthetic import SynthConfig, make_scene
from engine.inference.classical import classical_heights
from engine.inference.classical_core import gap_masks, halo_px


def test_windowed_equals_whole_image_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    dsm = (rng.random((120, 90)) * 30).astype(np.float32)
    valid = rng.random((120, 90)) > 0.05
    ref = classical_heights(dsm, valid, 0.5, 5.0, 3.0)
    halo = halo_px(0.5, 5.0, 3.0)
    pad_v = np.pad(np.where(valid, dsm, np.nan), halo, constant_values=np.nan)
    pad_ok = np.pad(valid, halo, constant_values=False)
    for a in range(0, 120, 17):
        b = min(a + 17, 120)
        win = np.s_[a : b + 2 * halo, :]
        got = classical_heights(pad_v[win], pad_ok[win], 0.5, 5.0, 3.0)[halo:-halo, halo:-halo]
        assert np.array_equal(got, ref[a:b], equal_nan=True)


def test_command_streams_like_whole_image(tmp_path: Path, dsm_file: Callable[..., Path]) -> None:
    dsm = smooth_dsm(130, 70, 4)
    dsm[50:60, 10:20] = np.nan
    path = dsm_file("dsm.tif", dsm)
    res = run(
        "classical",
        {
            "dsm": str(path),
            "output": str(tmp_path / "c.tif"),
            "heights": str(tmp_path / "h.tif"),
            "window_m": 9,
            "smoothing_m": 5,
            "band_rows": 16,
            "thresholds": [1, 3],
        },
    )
    assert res["rasters"][0]["bands_written"] == 9
    ref = classical_heights(dsm, np.isfinite(dsm), 1.0, 9, 5)
    with rasterio.open(tmp_path / "h.tif") as h, rasterio.open(tmp_path / "c.tif") as c:
        assert np.array_equal(h.read(1), ref, equal_nan=True)
        assert np.array_equal(c.read(), gap_masks(ref, [1.0, 3.0]))
        assert c.descriptions == ("gap <= 1 m", "gap <= 3 m") and c.nodata == 255


def test_finds_synthetic_gaps() -> None:
    scene = make_scene(
        SynthConfig(
            output=Path("unused"),
            size=256,
            pixel_size=1.0,
            seed=2,
            gaps=6,
            gap_radius_min_m=6,
            gap_radius_max_m=12,
            regrowth_max_m=1.0,
            relief_m=5.0,
        )
    )
    h = classical_heights(scene.dsm, scene.valid, 1.0, window_m=30, smoothing_m=10)
    found = h <= 5.0
    truth = scene.chm <= 5.0
    inner = np.zeros_like(truth)
    for g in scene.gaps:
        inner |= g.mask(truth.shape, 1.0, grow_m=-2.0)
    # the cores of the synthetic gaps are found, and most found pixels are true gaps
    assert found[inner].mean() > 0.9
    assert truth[found].mean() > 0.7
