"""``evaluate`` with float layers: gap probabilities and predicted canopy heights, end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.api import run
from engine.config.base import from_dict
from engine.errors import ConfigError, InputError
from engine.evaluation.config import EvaluateConfig
from engine.evaluation.heights import height_errors
from engine.evaluation.probability import probability_counts
from tests.evaluation.test_command import THRESHOLDS, labels, no_output, scene, write, write_mask

pytestmark = pytest.mark.filterwarnings("ignore:Unable to import Axes3D")


def probabilities(ref: np.ndarray, seed: int = 1) -> np.ndarray:
    """Probabilities that mostly agree with the labels (NaN where the labels are nodata)."""
    rng = np.random.default_rng(seed)
    p = np.clip(0.4 * (ref == 1) + 0.6 * rng.random(ref.shape), 0, 1).astype(np.float32)
    return np.where(ref == 255, np.nan, p).astype(np.float32)


def prob_desc(thresholds: list[float] = THRESHOLDS) -> list[str]:
    return [f"gap probability <= {t:g} m" for t in thresholds]


@pytest.fixture()
def layered(tmp_path: Path) -> dict[str, Any]:
    chm = scene(0)
    ref = labels(chm)
    probs = probabilities(ref)
    in_class = (chm >= 5) & (chm < 10)
    heights = np.where(in_class, chm + 1.0, chm).astype(np.float32)  # 1 m too high at 5-10 m
    return {
        "chm": chm,
        "ref": ref,
        "probs": probs,
        "in_class": in_class,
        "chm_path": write(tmp_path / "chm.tif", chm, nodata=-9999.0),
        "mask": write_mask(tmp_path / "mask.tif", (probs >= 0.5).astype(np.uint8)),
        "probs_path": write(tmp_path / "probs.tif", probs, descriptions=prob_desc()),
        "heights_path": write(tmp_path / "heights.tif", heights),
    }


def params(d: dict[str, Any], out: Path, **site: Any) -> dict[str, Any]:
    s = {
        "name": "a",
        "reference_chm": str(d["chm_path"]),
        "predictions": {"m": str(d["mask"])},
        "probabilities": {"m": str(d["probs_path"])},
        "heights": {"m": str(d["heights_path"])},
        **site,
    }
    return {"sites": [s], "output": str(out), "min_gap_area_m2": 4.0, "figures": False}


def test_probability_and_height_metrics_end_to_end(layered: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report"
    run("evaluate", params(layered, out))
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format_version"] == 2
    method = doc["aggregate"]["methods"]["m"]
    ref, probs = layered["ref"], layered["probs"]
    for k, band in enumerate(method["thresholds"]):
        expected = probability_counts(probs[k], np.isfinite(probs[k]), ref[k]).metrics()
        got = band["probability"]
        for key in ("pr_auc", "brier", "best_cut", "best_cut_iou", "pixels"):
            assert got[key] == pytest.approx(expected[key], abs=1e-12)
        assert got["iou_at_half"] == pytest.approx(band["pixel"]["iou"], abs=1e-12)  # mask: p >= .5
        assert 0.5 < got["pr_auc"] <= 1 and got["brier"] < 0.25
    chm = layered["chm"]
    h = method["height_error"]
    classes = {c["class_m"]: c for c in h["by_class"]}
    assert classes["5-10"]["pixels"] == layered["in_class"].sum()
    assert classes["5-10"]["bias"] == pytest.approx(1.0, abs=1e-5)
    assert classes["5-10"]["rmse"] == pytest.approx(1.0, abs=1e-5)
    assert classes["15-20"]["mae"] == 0.0
    assert h["overall"]["pixels"] == np.isfinite(chm).sum()
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[1]["pr_auc"]) == pytest.approx(
        method["thresholds"][1]["probability"]["pr_auc"]
    )
    assert float(rows[0]["height_bias"]) == pytest.approx(h["overall"]["bias"])
    with open(out / "height_error.csv", newline="") as f:
        hrows = list(csv.DictReader(f))
    assert len(hrows) == 2 * 7  # site a and "all", overall + 6 classes
    assert {r["site"] for r in hrows} == {"a", "all"}
    md = (out / "report.md").read_text()
    assert "## Gap probabilities (one site)" in md and "## Canopy height error (one site)" in md
    assert "#### Gap probabilities: a" in md and "| m | 5-10 |" in md
    assert "<h2>Canopy height error (one site)</h2>" in (out / "report.html").read_text()


def test_no_layers_no_new_sections(layered: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report"
    p = params(layered, out)
    del p["sites"][0]["probabilities"], p["sites"][0]["heights"]
    run("evaluate", p)
    band = json.loads((out / "metrics.json").read_text())["sites"]["a"]["methods"]["m"]
    assert band["height_error"] is None and band["thresholds"][0]["probability"] is None
    assert "Gap probabilities" not in (out / "report.md").read_text()
    assert not (out / "height_error.csv").exists()


def test_sites_pool_and_a_partial_layer_is_not_pooled(
    layered: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "report"
    p = params(layered, out)
    p["sites"].append({**p["sites"][0], "name": "b"})
    run("evaluate", p)
    doc = json.loads((out / "metrics.json").read_text())
    one = doc["sites"]["a"]["methods"]["m"]["thresholds"][1]["probability"]
    both = doc["aggregate"]["methods"]["m"]["thresholds"][1]["probability"]
    assert both["pixels"] == 2 * one["pixels"] and both["pr_auc"] == pytest.approx(one["pr_auc"])
    del p["sites"][1]["probabilities"]
    p["output"] = str(tmp_path / "partial")
    run("evaluate", p)
    doc = json.loads((tmp_path / "partial" / "metrics.json").read_text())
    assert doc["aggregate"]["methods"]["m"]["thresholds"][1]["probability"] is None
    assert doc["aggregate"]["methods"]["m"]["height_error"]["overall"]["pixels"] > 0


def test_uint8_percent_probabilities(layered: dict[str, Any], tmp_path: Path) -> None:
    probs = layered["probs"]
    percent = np.where(np.isfinite(probs), np.rint(np.nan_to_num(probs) * 100), 255)
    path = write(
        tmp_path / "pct.tif", percent.astype(np.uint8), nodata=255, descriptions=prob_desc()
    )
    run("evaluate", params(layered, tmp_path / "out", probabilities={"m": str(path)}))
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    got = doc["sites"]["a"]["methods"]["m"]["thresholds"][2]["probability"]
    p = percent[2].astype(np.float64) / 100
    expected = probability_counts(p, percent[2] != 255, layered["ref"][2]).metrics()
    assert got["brier"] == pytest.approx(expected["brier"], rel=1e-12)
    assert got["best_cut"] == expected["best_cut"] and got["pixels"] == expected["pixels"]


def test_streamed_layers_equal_whole_arrays(layered: dict[str, Any]) -> None:
    from engine.evaluation.layers import stream_heights, stream_probabilities
    from engine.evaluation.site import Reference, Settings, open_prediction, select_bands
    from engine.events import NullReporter

    pred = open_prediction(
        "m", layered["mask"], None, layered["probs_path"], layered["heights_path"]
    )
    select_bands(pred, THRESHOLDS)
    ref, probs = layered["ref"], layered["probs"]
    counts = stream_probabilities(pred.layers, ref, 2048, 7, NullReporter())
    for k, c in enumerate(counts):
        whole = probability_counts(probs[k], np.isfinite(probs[k]), ref[k])
        assert np.array_equal(c.positives, whole.positives)
        assert c.sum_sq_error == pytest.approx(whole.sum_sq_error, rel=1e-12)
    settings = Settings(strip_rows=7)
    streamed = stream_heights(
        pred.layers, Reference(chm=layered["chm_path"]), settings, NullReporter()
    )
    chm = layered["chm"]
    heights = np.where(layered["in_class"], chm + 1.0, chm).astype(np.float32)
    whole_h = height_errors(heights, chm, np.isfinite(chm), settings.height_edges)
    assert np.array_equal(streamed.n, whole_h.n)
    assert np.allclose(streamed.sum_sq, whole_h.sum_sq, rtol=1e-12)


def test_dtm_reference_on_another_grid(layered: dict[str, Any], tmp_path: Path) -> None:
    chm = layered["chm"]
    dtm = np.full((192, 192), 50.0, np.float32)  # 0.5 m pixels, same extent
    fine = np.repeat(np.repeat(chm, 2, axis=0), 2, axis=1)
    dsm = np.where(np.isfinite(fine), fine + 50.0, np.nan).astype(np.float32)
    p = params(layered, tmp_path / "out")
    del p["sites"][0]["reference_chm"]
    p["sites"][0]["dsm"] = str(write(tmp_path / "dsm.tif", dsm, pixel=0.5))
    p["sites"][0]["reference_dtm"] = str(write(tmp_path / "dtm.tif", dtm, pixel=0.5))
    run("evaluate", p)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    classes = {
        c["class_m"]: c for c in doc["sites"]["a"]["methods"]["m"]["height_error"]["by_class"]
    }
    assert classes["5-10"]["bias"] == pytest.approx(1.0, abs=1e-4)  # averaging 2x2 is exact
    assert classes[">= 20"]["mae"] == pytest.approx(0.0, abs=1e-4)


def test_layer_config_error(layered: dict[str, Any], tmp_path: Path) -> None:
    p = params(layered, tmp_path / "o", heights={"other": str(layered["heights_path"])})
    with pytest.raises(ConfigError, match="not a label of its predictions"):
        from_dict(EvaluateConfig, p)
    with pytest.raises(ConfigError, match="power of two"):
        from_dict(EvaluateConfig, {**params(layered, tmp_path / "o"), "probability_bins": 1000})


def _bad_inputs(d: dict[str, Any], tmp: Path) -> list[tuple[dict[str, Any], str]]:
    probs, shape = d["probs"], d["probs"].shape
    shifted = write(tmp / "shifted.tif", probs, origin=(500010.0, 4700000.0))
    over = write(tmp / "over.tif", probs * 40, descriptions=prob_desc())
    two = write(tmp / "two.tif", probs[:2], descriptions=prob_desc([2.0, 5.0]))
    stack = write(tmp / "stack.tif", np.zeros((2, *shape[1:]), np.float32))
    ints = write(tmp / "ints.tif", np.zeros(shape, np.int16))
    return [
        ({"probabilities": {"m": str(shifted)}}, "not on the grid"),
        ({"probabilities": {"m": str(over)}}, "outside 0..1"),
        ({"probabilities": {"m": str(two)}}, "no band for the 10 m"),
        ({"probabilities": {"m": str(ints)}}, "int16"),
        ({"heights": {"m": str(stack)}}, "one float band"),
        ({"heights": {"m": str(tmp / "missing.tif")}}, "missing.tif"),
    ]


def test_bad_layers_leave_no_output(layered: dict[str, Any], tmp_path: Path) -> None:
    for site, message in _bad_inputs(layered, tmp_path):
        out = tmp_path / "out"
        with pytest.raises(InputError, match=message):
            run("evaluate", params(layered, out, **site))
        assert no_output(out), message
