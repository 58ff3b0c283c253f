"""End to end ``evaluate`` on small generated GeoTIFFs, plus bad inputs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from engine.api import run
from engine.config.base import from_dict
from engine.data.labels import gap_masks
from engine.errors import Cancelled, ConfigError, CRSError, InputError, NoDataError
from engine.evaluation.command import run_evaluate
from engine.evaluation.config import EvaluateConfig
from engine.events import CallbackReporter
from engine.io.geotiff import write_raster
from engine.io.grid import make_info

pytestmark = pytest.mark.filterwarnings("ignore:Unable to import Axes3D")

THRESHOLDS = [2.0, 5.0, 10.0]
CRS = "EPSG:32618"
ORIGIN = (500000.0, 4700000.0)


def scene(seed: int = 0, size: int = 96) -> np.ndarray:
    """CHM with canopy 15-25 m and a few rectangular gaps of different depths."""
    rng = np.random.default_rng(seed)
    chm = (20 + 3 * rng.standard_normal((size, size))).astype(np.float32)
    for _ in range(12):
        r, c = rng.integers(0, size - 12, 2)
        h, w = rng.integers(2, 12, 2)
        chm[r : r + h, c : c + w] = rng.uniform(0, 9)
    chm[:3, :3] = np.nan  # a little nodata
    return chm


def write(
    path: Path,
    array: np.ndarray,
    crs: str | None = CRS,
    pixel: float = 1.0,
    origin: tuple[float, float] = ORIGIN,
    nodata: float | None = None,
    descriptions: list[str] | None = None,
) -> Path:
    arr = array if array.ndim == 3 else array[None]
    transform = Affine(pixel, 0, origin[0], 0, -pixel, origin[1])
    info = make_info(arr.shape[2], arr.shape[1], transform, crs)
    write_raster(path, arr, info, nodata=nodata, band_descriptions=descriptions, crs=crs)
    return path


def write_mask(
    path: Path, stack: np.ndarray, thresholds: list[float] = THRESHOLDS, **kw: Any
) -> Path:
    desc = [f"gap <= {t:g} m" for t in thresholds]
    return write(path, stack.astype(np.uint8), nodata=255, descriptions=desc, **kw)


def labels(chm: np.ndarray, thresholds: list[float] = THRESHOLDS) -> np.ndarray:
    return gap_masks(chm, np.isfinite(chm), thresholds, 1.0, 4.0, None)


@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Any]:
    chm = scene(0)
    ref = labels(chm)
    noisy = ref.copy()
    rng = np.random.default_rng(5)
    flip = (rng.random(noisy.shape) < 0.03) & (noisy != 255)
    noisy[flip] = 1 - noisy[flip]
    return {
        "chm": chm,
        "ref": ref,
        "chm_path": write(tmp_path / "chm.tif", chm, nodata=-9999.0),
        "perfect": write_mask(tmp_path / "perfect.tif", ref),
        "noisy": write_mask(tmp_path / "noisy.tif", noisy),
    }


def params(site: dict[str, Any], out: Path, **extra: Any) -> dict[str, Any]:
    base = {
        "sites": [
            {
                "name": "a",
                "reference_chm": str(site["chm_path"]),
                "predictions": {"perfect": str(site["perfect"]), "noisy": str(site["noisy"])},
            }
        ],
        "output": str(out),
        "min_gap_area_m2": 4.0,
        "cell_size_m": 16.0,
    }
    base.update(extra)
    return base


def test_end_to_end_single_site(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report"
    events: list[dict[str, Any]] = []
    result = run("evaluate", params(site, out), CallbackReporter(events.append))
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format"] == "canopygaps-metrics" and doc["format_version"] == 2
    assert doc["engine_version"] and doc["thresholds"] == THRESHOLDS
    perfect = doc["sites"]["a"]["methods"]["perfect"]
    for band in perfect["thresholds"]:
        assert band["pixel"]["iou"] == 1.0 and band["pixel"]["kappa"] == pytest.approx(1.0)
        assert band["objects"]["all"]["f1"] == 1.0
        assert band["gap_fraction"]["r2"] == pytest.approx(1.0)
        sd = band["size_distribution"]
        assert sd["pred"]["lambda"] == pytest.approx(sd["ref"]["lambda"])
    assert perfect["nesting"]["rate"] == 0.0
    noisy = doc["aggregate"]["methods"]["noisy"]["thresholds"][1]["pixel"]
    assert 0 < noisy["iou"] < 1
    # headline numbers in the result
    assert result["iou"]["perfect"] == {"2": 1.0, "5": 1.0, "10": 1.0}
    assert result["iou"]["noisy"]["5"] == pytest.approx(noisy["iou"])
    json.dumps(result, allow_nan=False)  # the JSON-lines protocol sends it as is
    # CSV: one row per site x method x threshold
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 * 2 * 3
    assert {r["method"] for r in rows} == {"perfect", "noisy"}
    with open(out / "metrics_aggregate.csv", newline="") as f:
        pooled = list(csv.DictReader(f))
    assert [(r["site"], r["method"]) for r in pooled] == [("all", "perfect")] * 3 + [
        ("all", "noisy")
    ] * 3
    assert float(pooled[4]["iou"]) == pytest.approx(noisy["iou"])
    # report.md references PNGs that exist
    md = (out / "report.md").read_text()
    sections = [
        "## IoU per threshold (one site)",
        "## Comparison of methods (one site)",
        "## Nesting violations of the predictions",
        "## Objects by gap size",
        "## Figures",
        "## Per site",
        "### a",
        "## Definitions",
    ]
    assert [h for h in re.findall(r"^#+ .*$", md, re.M) if h in sections] == sections
    assert "| perfect | 0.000 | 0 |" in md  # nesting: rate, violating pixels, valid pixels
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) >= 5
    for rel in images:
        assert (out / rel).is_file() and (out / rel).read_bytes()[:4] == b"\x89PNG"
    assert (out / "report.html").read_text().count("<img") == len(images)
    assert all(Path(p).is_file() for p in result["figures"])
    assert any(e["event"] == "progress" for e in events)
    assert not list(tmp_path.glob(".report.part-*"))


def test_multi_site_counts_are_summed(site: dict[str, Any], tmp_path: Path) -> None:
    chm_b = scene(1, size=64)
    ref_b = labels(chm_b)
    noisy_b = ref_b.copy()
    noisy_b[10:20, 10:20] = 1
    origin_b = (ORIGIN[0] + 1000, ORIGIN[1])
    b = {
        "name": "b",
        "reference_chm": str(write(tmp_path / "chm_b.tif", chm_b, origin=origin_b)),
        "predictions": {
            "perfect": str(write_mask(tmp_path / "p_b.tif", ref_b, origin=origin_b)),
            "noisy": str(write_mask(tmp_path / "n_b.tif", noisy_b, origin=origin_b)),
        },
    }
    p = params(site, tmp_path / "out")
    p["sites"].append(b)
    run_evaluate(from_dict(EvaluateConfig, {**p, "figures": False}))
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for k in range(3):
        a = doc["sites"]["a"]["methods"]["noisy"]["thresholds"][k]["pixel"]
        bb = doc["sites"]["b"]["methods"]["noisy"]["thresholds"][k]["pixel"]
        agg = doc["aggregate"]["methods"]["noisy"]["thresholds"][k]["pixel"]
        for key in ("tp", "fp", "fn", "tn"):
            assert agg[key] == a[key] + bb[key]
        assert agg["iou"] == pytest.approx(agg["tp"] / (agg["tp"] + agg["fp"] + agg["fn"]))
    with open(tmp_path / "out" / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * 2 * 3
    assert "Figures were not drawn" in (tmp_path / "out" / "report.md").read_text()


def test_dtm_reference_and_reference_on_another_grid(site: dict[str, Any], tmp_path: Path) -> None:
    chm = site["chm"]
    dtm = np.full(chm.shape, 100.0, np.float32)
    dsm = np.where(np.isfinite(chm), chm + dtm, np.nan).astype(np.float32)
    fine = np.repeat(np.repeat(np.nan_to_num(chm, nan=-9999.0), 2, 0), 2, 1)
    p = params(site, tmp_path / "out", figures=False)
    p["sites"] = [
        {
            "name": "dtm",
            "dsm": str(write(tmp_path / "dsm.tif", dsm)),
            "reference_dtm": str(write(tmp_path / "dtm.tif", dtm)),
            "predictions": {"perfect": str(site["perfect"])},
        },
        {
            "name": "fine",  # reference CHM at 0.5 m: aligned onto the 1 m prediction grid
            "reference_chm": str(write(tmp_path / "fine.tif", fine, pixel=0.5, nodata=-9999.0)),
            "predictions": {"perfect": str(site["perfect"])},
        },
    ]
    run_evaluate(from_dict(EvaluateConfig, p))
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    dtm_iou = [b["pixel"]["iou"] for b in doc["sites"]["dtm"]["methods"]["perfect"]["thresholds"]]
    assert dtm_iou == pytest.approx([1.0, 1.0, 1.0])
    fine_iou = [b["pixel"]["iou"] for b in doc["sites"]["fine"]["methods"]["perfect"]["thresholds"]]
    assert min(fine_iou) > 0.8


def test_thresholds_subset_and_nesting_violations(site: dict[str, Any], tmp_path: Path) -> None:
    broken = site["ref"].copy()
    broken[1][broken[0] == 1] = 0  # gap at 2 m, not at 5 m
    p = params(site, tmp_path / "out", figures=False, thresholds=[2, 5])
    p["sites"][0]["predictions"] = {"broken": str(write_mask(tmp_path / "broken.tif", broken))}
    result = run("evaluate", p)
    assert result["thresholds"] == [2.0, 5.0]
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    nesting = doc["sites"]["a"]["methods"]["broken"]["nesting"]
    assert nesting["pairs"][0]["rate"] == 1.0 and nesting["rate"] > 0


def no_output(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.part-*"))


def test_missing_file(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = params(site, out)
    p["sites"][0]["predictions"]["ghost"] = str(tmp_path / "nope.tif")
    with pytest.raises(InputError, match="does not exist"):
        run("evaluate", p)
    assert no_output(out)


def test_crs_mismatch_without_overlap(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = params(site, out)
    other = write(tmp_path / "chm33.tif", site["chm"], crs="EPSG:32633")  # same numbers, other zone
    p["sites"][0]["reference_chm"] = str(other)
    with pytest.raises(NoDataError, match="do not overlap"):
        run("evaluate", p)
    assert no_output(out)


def test_reference_without_crs(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = params(site, out)
    bare = write(tmp_path / "bare.tif", site["chm"][:, :90], crs=None)
    p["sites"][0]["reference_chm"] = str(bare)
    with pytest.raises(CRSError, match="no CRS"):
        run("evaluate", p)
    assert no_output(out)
    # assigning the site's CRS resolves it
    p["sites"][0]["crs"] = CRS
    p["figures"] = False
    run("evaluate", p)
    assert (out / "metrics.json").is_file()


def test_wrong_band_count(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    two = write(tmp_path / "two.tif", site["ref"][:2], nodata=255)  # no band descriptions
    p = params(site, out, thresholds=THRESHOLDS)
    p["sites"][0]["predictions"] = {"two": str(two)}
    with pytest.raises(InputError, match="2 band"):
        run("evaluate", p)
    described = write_mask(tmp_path / "d.tif", site["ref"][:2], thresholds=[2.0, 5.0])
    p["sites"][0]["predictions"] = {"d": str(described)}
    with pytest.raises(InputError, match="no band for the 10 m"):
        run("evaluate", p)
    assert no_output(out)


def test_probabilities_rejected_no_output(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    probs = np.full((3, 96, 96), 0.3, np.float32)
    desc = [f"gap <= {t:g} m" for t in THRESHOLDS]
    path = write(tmp_path / "probs.tif", probs, descriptions=desc)
    p = params(site, out)
    p["sites"][0]["predictions"] = {"probs": str(path)}
    with pytest.raises(InputError, match="other than 0"):
        run("evaluate", p)
    assert no_output(out)


def test_cancel_leaves_no_output(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    reporter = CallbackReporter(lambda e: None, is_cancelled=lambda: True)
    with pytest.raises(Cancelled):
        run("evaluate", params(site, out), reporter)
    assert no_output(out)


def test_unknown_figure_threshold_fails_before_any_method_runs(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """With the thresholds known from the given predictions, a ``figure_threshold`` that is not
    one of them is refused before the classical baseline runs or anything is written."""
    out = tmp_path / "out"
    dsm = write(tmp_path / "dsm.tif", np.nan_to_num(site["chm"]) + 300.0)
    p = params(site, out, figure_threshold=7.0, classical=True)
    p["sites"][0]["dsm"] = str(dsm)
    events: list[dict[str, Any]] = []
    with pytest.raises(ConfigError, match="'figure_threshold' = 7 is not an evaluated"):
        run("evaluate", p, CallbackReporter(events.append))
    assert not [e for e in events if "running" in str(e.get("message", ""))]
    assert no_output(out)


@pytest.mark.parametrize(
    ("site_cfg", "message"),
    [
        ({"name": "x", "predictions": {"p": "a.tif"}}, "no reference"),
        ({"name": "x", "reference_chm": "c.tif", "reference_dtm": "d.tif", "dsm": "s.tif"}, "both"),
        ({"name": "x", "reference_dtm": "d.tif", "predictions": {"p": "a.tif"}}, "no dsm"),
        ({"name": "x", "reference_chm": "c.tif"}, "nothing to evaluate"),
        ({"name": "x", "reference_chm": "c.tif", "typo": 1}, "typo"),
    ],
)
def test_config_errors(site_cfg: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(EvaluateConfig, {"sites": [site_cfg], "output": str(tmp_path / "o")})


def tiny_model(tmp_path: Path) -> tuple[Path, Any]:
    """An untrained one-channel U-Net saved as ``tiny.safetensors`` (1 m pixels), and its
    description."""
    torch = pytest.importorskip("torch")
    from engine.models.modelfile import ModelDescription, save_model
    from engine.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=3, thresholds=THRESHOLDS, norm="batch")
    desc = ModelDescription(
        architecture={},
        thresholds=THRESHOLDS,
        tile_size=64,
        pixel_size=1.0,
        normalisation={"window_m": 16.0, "percentile": 2.0, "scale": 10.0, "clip_m": 80.0},
    )
    model_path = tmp_path / "tiny.safetensors"
    save_model(model_path, model.eval(), desc)
    return model_path, desc


def test_models_and_classical_baseline_in_one_table(site: dict[str, Any], tmp_path: Path) -> None:
    from engine.models.modelfile import save_model
    from engine.models.registry import build_model

    model_path, desc = tiny_model(tmp_path)
    tall = build_model("unet", base_channels=4, depth=3, thresholds=THRESHOLDS, head="height")
    save_model(tmp_path / "tall.safetensors", tall.eval(), desc)  # it estimates canopy height
    chm = site["chm"]
    dtm = np.full(chm.shape, 100.0, np.float32)
    dsm = np.where(np.isfinite(chm), chm + dtm, np.nan).astype(np.float32)
    out = tmp_path / "out"
    p = {
        "sites": [
            {
                "name": "a",
                "dsm": str(write(tmp_path / "dsm.tif", dsm)),
                "reference_dtm": str(write(tmp_path / "dtm.tif", dtm)),
                "predictions": {"perfect": str(site["perfect"])},
            }
        ],
        "models": [str(model_path), str(tmp_path / "tall.safetensors")],
        "classical": True,
        "output": str(out),
        "min_gap_area_m2": 4.0,
    }
    result = run("evaluate", p)
    assert set(result["iou"]) == {"perfect", "classical", "ref21", "tiny", "tall"}
    assert result["thresholds"] == THRESHOLDS
    doc = json.loads((out / "metrics.json").read_text())
    sources = doc["sites"]["a"]["methods"]["classical"]["sources"]
    assert Path(sources[0]).is_file() and Path(sources[0]).is_relative_to(out)
    methods = doc["sites"]["a"]["methods"]
    for band in methods["tiny"]["thresholds"]:  # evaluate asks the model for probabilities
        pr, px = band["probability"], band["pixel"]
        assert pr["pixels"] == px["tp"] + px["fp"] + px["fn"] + px["tn"]
        assert pr["iou_at_half"] == pytest.approx(px["iou"], abs=1e-3)  # the mask is p > 0.5
    assert methods["classical"]["thresholds"][0]["probability"] is None
    assert methods["classical"]["height_error"] is None  # heights above ground, per threshold
    assert methods["perfect"]["height_error"] is None
    assert methods["tiny"]["height_error"] is None  # no height head: not asked for heights
    assert methods["tall"]["height_error"]["overall"]["pixels"] > 0
    md = (out / "report.md").read_text()
    assert "| classical |" in md and "| ref21 |" in md and "| tiny |" in md
    with open(out / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 5 * 3


def test_resample_runs_every_method_on_the_model_grid(tmp_path: Path) -> None:
    """A 2 m DSM and a 1 m model with ``resample``: the classical methods run on the DSM
    resampled to 1 m too, so every method is scored on the same 1 m grid against the same
    labels (same pixel totals); the resampled copy does not stay in the report."""
    model_path, _ = tiny_model(tmp_path)
    chm = scene(3, size=80)
    dtm = np.full(chm.shape, 100.0, np.float32)
    dsm = np.where(np.isfinite(chm), chm + dtm, np.nan).astype(np.float32)
    out = tmp_path / "out"
    p = {
        "sites": [
            {
                "name": "a",
                "dsm": str(write(tmp_path / "dsm.tif", dsm, pixel=2.0, nodata=-9999.0)),
                "reference_dtm": str(write(tmp_path / "dtm.tif", dtm, pixel=2.0)),
            }
        ],
        "models": [str(model_path)],
        "classical": True,
        "resample": True,
        "output": str(out),
    }
    run("evaluate", p)
    methods = json.loads((out / "metrics.json").read_text())["sites"]["a"]["methods"]
    totals = {
        name: sum(m["thresholds"][0]["pixel"][k] for k in ("tp", "fp", "fn", "tn"))
        for name, m in methods.items()
    }
    assert set(totals) == {"classical", "ref21", "tiny"}
    (total,) = set(totals.values())  # one grid for all
    assert 160 * 160 - 64 < total < 160 * 160  # 1 m pixels but the corner without data
    for name in totals:
        with rasterio.open(out / "predictions" / "a" / f"{name}.tif") as ds:
            assert ds.res == (1.0, 1.0) and ds.shape == (160, 160)
    assert not (out / "inputs").exists()


@pytest.mark.realdata
def test_harvard_forest_classical_baseline(shared_data: Path, tmp_path: Path) -> None:
    harv = shared_data / "real" / "harv"
    out = tmp_path / "harv"
    p = {
        "sites": [
            {"name": "harv", "dsm": str(harv / "dsm.tif"), "reference_dtm": str(harv / "dtm.tif")}
        ],
        "classical": True,
        "thresholds": [2, 5, 10],
        "min_gap_area_m2": 4,
        "output": str(out),
    }
    result = run("evaluate", p)
    iou = result["iou"]["classical"]
    assert all(0.3 < v < 1 for v in iou.values())  # about 0.67, 0.73, 0.82 (engine 0.1.0)
    doc = json.loads((out / "metrics.json").read_text())
    band = doc["sites"]["harv"]["methods"]["classical"]["thresholds"][1]
    assert band["size_distribution"]["ref"]["lambda"] == pytest.approx(2.09, abs=0.1)
    assert band["gap_fraction"]["r2"] > 0.5


def test_streamed_strips_equal_whole_arrays(site: dict[str, Any]) -> None:
    from engine.evaluation.confusion import confusion_counts
    from engine.evaluation.gapfraction import gap_fraction_stats
    from engine.evaluation.site import Settings, evaluate_prediction, open_prediction, select_bands

    pred = open_prediction("noisy", site["noisy"])
    select_bands(pred, THRESHOLDS)
    noisy = np.stack([np.asarray(b) for b in _read_stack(site["noisy"])])
    ref = site["ref"]
    small = Settings(cell_size_m=4.0, strip_rows=8, preview_index=0)
    result, preview = evaluate_prediction(pred, THRESHOLDS, ref, small)
    for k, band in enumerate(result.bands):
        assert band.confusion == confusion_counts(noisy[k], ref[k])
        whole = gap_fraction_stats(noisy[k], ref[k], 4)
        assert band.cells.n == whole.n
        assert band.cells.sum_err2 == pytest.approx(whole.sum_err2)
    assert preview is not None and preview.classes.shape == (96, 96)


def _read_stack(path: Path) -> list[np.ndarray]:
    from engine.io.raster import RasterReader

    with RasterReader(path) as r:
        out = []
        for b in range(1, r.info.count + 1):
            v, ok = r.read(b)
            out.append(np.where(ok, v, 255).astype(np.uint8))
        return out
