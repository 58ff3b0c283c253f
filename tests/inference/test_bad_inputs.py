"""Bad inputs and cancel leave no output at all (not even temporary files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.api import run
from engine.errors import Cancelled, CRSError, GridError, InputError, ModelFileError
from engine.events import CallbackReporter

from .helpers import files_in, smooth_dsm


def _infer(tmp_path: Path, dsm: Path, model: Path, **extra: object) -> dict:
    out = tmp_path / "out"
    params = {
        "dsm": str(dsm),
        "model": str(model),
        "output": str(out / "gaps.tif"),
        "probabilities": str(out / "p.tif"),
        "polygons": str(out / "g.gpkg"),
        "tile_size": 64,
        "precision": "fp32",
        **extra,
    }
    return run("infer", params)


def _no_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not out.exists() or files_in(out) == []


def test_geographic_crs(tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]) -> None:
    path = dsm_file("dsm.tif", smooth_dsm(40, 40), pixel_size=0.00001, crs="EPSG:4326")
    with pytest.raises(CRSError, match="geographic"):
        _infer(tmp_path, path, unet_file)
    _no_output(tmp_path)


def test_wrong_band_count(tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]) -> None:
    path = dsm_file("dsm.tif", np.stack([smooth_dsm(40, 40)] * 2))
    with pytest.raises(InputError, match="2 bands"):
        _infer(tmp_path, path, unet_file)
    _no_output(tmp_path)


def test_band_of_a_multi_band_dsm(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    """'band' picks the height band: band 2 of [noise, DSM] gives the DSM's masks, for infer
    (plain and resampled reads) and classical; a band the raster lacks is an error."""
    dsm = smooth_dsm(40, 40)
    single = dsm_file("single.tif", dsm)
    multi = dsm_file("multi.tif", np.stack([np.zeros_like(dsm), dsm]))
    want = _infer(tmp_path / "a", single, unet_file)
    got = _infer(tmp_path / "b", multi, unet_file, band=2)
    with rasterio.open(want["output"]) as a, rasterio.open(got["output"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    coarse = dsm_file("multi2.tif", np.stack([np.zeros_like(dsm), dsm]), pixel_size=2.0)
    one = dsm_file("one2.tif", dsm, pixel_size=2.0)
    want = _infer(tmp_path / "c", one, unet_file, resample=True)
    got = _infer(tmp_path / "d", coarse, unet_file, resample=True, band=2)
    with rasterio.open(want["output"]) as a, rasterio.open(got["output"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    cl = {"thresholds": [2.0, 5.0], "window_m": 10.0}
    want = run("classical", {"dsm": str(single), "output": str(tmp_path / "c1.tif"), **cl})
    got = run("classical", {"dsm": str(multi), "output": str(tmp_path / "c2.tif"), "band": 2, **cl})
    with rasterio.open(want["output"]) as a, rasterio.open(got["output"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    with pytest.raises(InputError, match="band 3 does not exist"):
        _infer(tmp_path / "e", multi, unet_file, band=3)
    _no_output(tmp_path / "e")


def test_pixel_size_mismatch_then_resample(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    path = dsm_file("dsm.tif", smooth_dsm(40, 50), pixel_size=2.0)
    with pytest.raises(GridError, match=r"2 m pixels.*1 m") as err:
        _infer(tmp_path, path, unet_file)
    assert "resample" in err.value.hint
    _no_output(tmp_path)
    res = _infer(tmp_path, path, unet_file, resample=True)
    assert res["rasters"][0]["resampled"]
    with rasterio.open(res["output"]) as ds, rasterio.open(path) as src:
        assert ds.res == (1.0, 1.0) and ds.shape == (80, 100)
        assert ds.bounds == src.bounds and ds.crs == src.crs


def test_corrupt_model_file(tmp_path: Path, dsm_file: Callable[..., Path]) -> None:
    path = dsm_file("dsm.tif", smooth_dsm(40, 40))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(100))
    with pytest.raises(ModelFileError):
        _infer(tmp_path, path, bad)
    _no_output(tmp_path)


def test_missing_dsm(tmp_path: Path, unet_file: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        _infer(tmp_path, tmp_path / "nope.tif", unet_file)
    _no_output(tmp_path)


@pytest.mark.parametrize("stage", ["predict", "post-process", "polygons"])
def test_cancel_leaves_no_output(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], stage: str
) -> None:
    a = dsm_file("a.tif", smooth_dsm(100, 90, 1))
    b = dsm_file("b.tif", smooth_dsm(100, 90, 2))
    seen: list[dict] = []

    def cancelled() -> bool:
        # cancel while the *second* DSM is in ``stage``: the first one's outputs must go too
        return any(e.get("stage") == stage and e["value"] > 0.5 for e in seen)

    reporter = CallbackReporter(seen.append, cancelled)
    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        run(
            "infer",
            {
                "dsm": [str(a), str(b)],
                "model": str(unet_file),
                "output": str(out),
                "polygons": str(out),
                "min_gap_area_m2": 5,
                "tile_size": 64,
                "precision": "fp32",
            },
            reporter,
        )
    progress = [e for e in seen if e["event"] == "progress"]
    assert progress[-1]["stage"] == stage and progress[-1]["value"] > 0.5
    _no_output(tmp_path)
