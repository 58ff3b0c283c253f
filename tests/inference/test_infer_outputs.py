"""engine infer outputs: georeference, nodata, descriptions, probabilities, batch, thresholds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.api import run
from engine.errors import ConfigError
from engine.events import CallbackReporter
from engine.io.vector import read_polygons

from .helpers import files_in, smooth_dsm

PATH_KEYS = ("dsm", "output", "probabilities", "heights", "polygons", "width", "height")


def test_georeference_round_trip(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    dsm = smooth_dsm(90, 110)
    dsm[10:20, 30:45] = np.nan
    path = dsm_file("dsm.tif", dsm, pixel_size=1.02)
    events: list[dict] = []
    out = tmp_path / "out" / "gaps.tif"
    res = run(
        "infer",
        {
            "dsm": str(path),
            "model": str(unet_file),
            "output": str(out),
            "probabilities": str(tmp_path / "out" / "p.tif"),
            "tile_size": 64,
            "precision": "fp32",
        },
        CallbackReporter(events.append),
    )
    assert res["output"] == str(out) and res["mpx_per_s"] > 0 and 0 < res["forward_share"] <= 1
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any(
        "device cpu" in m and "precision fp32" in m and "tile" in m and "batch" in m for m in logs
    )
    with (
        rasterio.open(path) as src,
        rasterio.open(out) as dst,
        rasterio.open(res["probabilities"]) as pr,
    ):
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.width, dst.height, dst.count, dst.dtypes[0]) == (110, 90, 3, "uint8")
        assert dst.nodata == 255
        assert dst.descriptions == ("gap <= 2 m", "gap <= 5 m", "gap <= 10 m")
        masks = dst.read()
        assert (masks[:, 10:20, 30:45] == 255).all()
        assert set(np.unique(np.delete(masks.reshape(3, -1), np.s_[:0], 1))) <= {0, 1, 255}
        assert ((masks == 255).sum(0) % 3 == 0).all()
        assert (masks[:, ~np.isnan(dsm)] != 255).all()
        probs = pr.read()
        assert pr.dtypes[0] == "float32" and pr.transform == src.transform
        assert np.isnan(probs[:, 10:20, 30:45]).all()
        ok = ~np.isnan(dsm)
        assert np.array_equal(probs[:, ok] > 0.5, masks[:, ok] == 1)
    assert not [n for n in files_in(tmp_path / "out") if n.startswith(".")]


def test_batch_mode_and_uint8_probabilities(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    a = dsm_file("a.tif", smooth_dsm(40, 50, 1))
    b_dsm = smooth_dsm(60, 30, 2)
    b_dsm[5:15, 10:20] = np.nan
    b = dsm_file("b.tif", b_dsm)
    res = run(
        "infer",
        {
            "dsm": [str(a), str(b)],
            "model": str(unet_file),
            "output": str(tmp_path / "o"),
            "probabilities": str(tmp_path / "o"),
            "probability_format": "uint8",
            "tile_size": 64,
            "precision": "fp32",
            "thresholds": [5, 10],
        },
    )
    assert files_in(tmp_path / "o") == [
        "a_gaps.tif",
        "a_probabilities.tif",
        "b_gaps.tif",
        "b_probabilities.tif",
    ]
    assert len(res["rasters"]) == 2 and res["thresholds"] == [5.0, 10.0]
    assert res["outputs"] == [str(tmp_path / "o" / f"{n}_gaps.tif") for n in "ab"]
    assert "output" not in res  # the single-DSM keys only with one DSM
    assert {k: v for k, v in res["rasters"][1].items() if k in PATH_KEYS} == {
        "dsm": str(b),
        "output": str(tmp_path / "o" / "b_gaps.tif"),
        "probabilities": str(tmp_path / "o" / "b_probabilities.tif"),
        "heights": None,
        "polygons": None,
        "width": 30,
        "height": 60,
    }
    with rasterio.open(tmp_path / "o" / "b_probabilities.tif") as ds:
        assert ds.dtypes[0] == "uint8" and ds.count == 2 and ds.nodata == 255
        assert ds.descriptions == ("gap probability % <= 5 m", "gap probability % <= 10 m")
        pct = ds.read()
        assert (pct[:, 5:15, 10:20] == 255).all()
        assert pct[:, ~np.isnan(b_dsm)].max() <= 100
    with rasterio.open(tmp_path / "o" / "b_gaps.tif") as ds:
        assert ds.descriptions == ("gap <= 5 m", "gap <= 10 m") and ds.shape == (60, 30)


@pytest.mark.parametrize("command", ["infer", "classical"])
def test_progress_rises_through_the_stages_of_each_dsm(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], command: str
) -> None:
    """Both commands: per DSM compute, post-process and polygons in turn; progress never goes
    back and ends at 1.0."""
    dsms = [str(dsm_file(f"{n}.tif", smooth_dsm(70, 60, i))) for i, n in enumerate("ab")]
    params = {"dsm": dsms, "output": str(tmp_path / "o"), "polygons": str(tmp_path / "o")}
    params |= {"min_gap_area_m2": 4.0, "band_rows": 16} if command == "classical" else {}
    if command == "infer":
        params |= {"model": str(unet_file), "min_gap_area_m2": 4.0, "tile_size": 64}
    events: list[dict] = []
    run(command, params, CallbackReporter(events.append))
    progress = [(e["value"], e["stage"]) for e in events if e["event"] == "progress"]
    values = [v for v, _ in progress]
    assert values == sorted(values) and progress[-1] == (1.0, "done")
    compute = "predict" if command == "infer" else "classical"
    first = [(v, s) for v, s in progress if v <= 0.5]  # the first DSM's half
    stages = [s for _, s in first]
    assert stages.index("post-process") > stages.index(compute)
    assert stages.index("polygons") > stages.index("post-process")
    assert max(v for v, s in first if s == compute) <= 0.5 * 0.85 + 1e-9


def test_threshold_not_in_model_is_config_error(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    path = dsm_file("dsm.tif", smooth_dsm(40, 40))
    with pytest.raises(ConfigError, match="not one of this model's thresholds"):
        run(
            "infer",
            {
                "dsm": str(path),
                "model": str(unet_file),
                "output": str(tmp_path / "g.tif"),
                "thresholds": [3.0],
            },
        )
    assert not (tmp_path / "g.tif").exists()


def test_oracle_model_finds_gaps_and_polygons(
    tmp_path: Path, oracle_file: Path, dsm_file: Callable[..., Path]
) -> None:
    """A conditioned model whose right answer is known: a 12 x 12 m hole in a canopy."""
    dsm = np.full((100, 120), 125.0, np.float32)  # canopy 25 m above ground at 100 m
    dsm[::4, ::4] = 100.0  # ground seen through the canopy: sets the low surface, 1 m2 "gaps"
    dsm[42:54, 62:74] = 101.0  # gap: 1 m above ground, 144 m2, not touching the dots
    dsm[82:85, 90:93] = 100.5  # small gap, 9 m2
    path = dsm_file("dsm.tif", dsm)
    out = tmp_path / "gaps.tif"
    res = run(
        "infer",
        {
            "dsm": str(path),
            "model": str(oracle_file),
            "output": str(out),
            "polygons": str(tmp_path / "gaps.gpkg"),
            "thresholds": [3.0, 30.0],
            "min_gap_area_m2": 10,
            "tile_size": 64,
            "precision": "fp32",
        },
    )
    assert res["thresholds"] == [3.0, 30.0]
    assert res["polygons"] == str(tmp_path / "gaps.gpkg")
    assert sum(res["rasters"][0]["polygon_counts"].values()) == 2
    with rasterio.open(out) as ds:
        m = ds.read()
    assert (m[0, 42:54, 62:74] == 1).all() and m[0].sum() == 144
    assert (m[1] == 1).all()
    polys = read_polygons(tmp_path / "gaps.gpkg")
    low = [p for p in polys if p["threshold_m"] == 3.0]
    assert len(low) == 1 and low[0]["area_m2"] == pytest.approx(144.0)
    assert low[0]["perimeter_m"] == pytest.approx(48.0)
    high = [p for p in polys if p["threshold_m"] == 30.0]
    assert len(high) == 1 and high[0]["area_m2"] == pytest.approx(120 * 100)
