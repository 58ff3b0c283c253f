"""Every algorithm on tiny generated rasters, with the in-process and subprocess backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin.helpers import run_and_load

pytestmark = pytest.mark.qgis

INPROCESS, SUBPROCESS = "inprocess", "subprocess"
BACKENDS = pytest.mark.parametrize(
    "backend", [INPROCESS, SUBPROCESS], ids=["inprocess", "subprocess"]
)
TINY_TRAIN = {
    "EPOCHS": 1,
    "MAX_STEPS": 2,
    "BATCH_SIZE": 4,
    "BASE_CHANNELS": 4,
    "DEPTH": 2,
    "DEVICE": "cpu",
    "TENSORBOARD": False,
    "AUGMENT": False,
}


def run(alg, params, feedback=None, context=None):
    import processing

    return processing.run(f"canopygaps:{alg}", params, feedback=feedback, context=context)


def bands(path) -> int:
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.RasterCount


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plugin-algs")


@pytest.fixture(scope="module")
def scene(provider, workdir) -> dict:
    """A 128 x 128 synthetic scene (engine synth, in-process)."""
    out = run(
        "synth",
        {"SIZE": 128, "SEED": 1, "GAPS": 6, "OUTPUT": str(workdir / "scene"), "BACKEND": INPROCESS},
    )
    return out


@pytest.fixture(scope="module")
def trained(scene, workdir) -> dict:
    """Dataset and tiny model made in-process (inputs of the infer/evaluate tests)."""
    ds = run(
        "preprocess",
        {
            "DSM": scene["DSM"],
            "REFERENCE": scene["CHM"],
            "TILE_SIZE": 32,
            "THRESHOLDS": "2,5,10",
            "OUTPUT": str(workdir / "dataset"),
            "BACKEND": INPROCESS,
        },
    )
    model = run(
        "train",
        {
            "DATASET": ds["OUTPUT"],
            "OUTPUT": str(workdir / "model.safetensors"),
            **TINY_TRAIN,
            "BACKEND": INPROCESS,
        },
    )
    return {"dataset": ds, "model": model}


@BACKENDS
def test_preprocess(scene, tmp_path, feedback_factory, backend):
    fb = feedback_factory()
    out = run(
        "preprocess",
        {
            "DSM": scene["DSM"],
            "REFERENCE": scene["CHM"],
            "TILE_SIZE": 32,
            "THRESHOLDS": "2,5,10",
            "OPTIONS": "split.block_tiles=1",
            "OUTPUT": str(tmp_path / "ds"),
            "BACKEND": backend,
        },
        fb,
    )
    assert Path(out["MANIFEST"]).is_file()
    assert out["TRAIN_TILES"] > 0
    assert (tmp_path / "ds" / "train" / "inputs.npy").is_file()
    assert fb.values and max(fb.values) == pytest.approx(100.0)


@BACKENDS
def test_folder_output_holding_user_files_is_refused_untouched(scene, tmp_path, backend):
    """Issue 13 item 1 through QGIS: the dataset folder holds the user's files -> error, intact."""
    from qgis.core import QgsProcessingException

    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "notes.txt").write_text("field notes")
    (folder / "dsm.tif").write_bytes(Path(scene["DSM"]).read_bytes())
    params = {
        "DSM": scene["DSM"],
        "REFERENCE": scene["CHM"],
        "TILE_SIZE": 32,
        "THRESHOLDS": "2,5,10",
        "OUTPUT": str(folder),
        "BACKEND": backend,
    }
    with pytest.raises(QgsProcessingException, match="did not write"):
        run("preprocess", params)
    assert sorted(p.name for p in folder.iterdir()) == ["dsm.tif", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "field notes"
    assert (folder / "dsm.tif").read_bytes() == Path(scene["DSM"]).read_bytes()


@BACKENDS
def test_train(trained, tmp_path, feedback_factory, backend):
    fb = feedback_factory()
    out = run(
        "train",
        {
            "DATASET": trained["dataset"]["OUTPUT"],
            "OUTPUT": str(tmp_path / "m.safetensors"),
            **TINY_TRAIN,
            "BACKEND": backend,
        },
        fb,
    )
    assert Path(out["OUTPUT"]).is_file() and out["OUTPUT"].endswith(".safetensors")
    assert Path(out["DESCRIPTION"]).is_file()
    assert fb.values


@BACKENDS
def test_infer_with_probabilities_and_polygons(scene, trained, tmp_path, feedback_factory, backend):
    fb = feedback_factory()
    out = run(
        "infer",
        {
            "DSM": scene["DSM"],
            "MODEL": trained["model"]["OUTPUT"],
            "OUTPUT": str(tmp_path / "gaps.tif"),
            "PROBABILITIES": str(tmp_path / "prob.tif"),
            "POLYGONS": str(tmp_path / "gaps.gpkg"),
            "DEVICE": "cpu",
            "BACKEND": backend,
        },
        fb,
    )
    assert bands(out["OUTPUT"]) == 3
    assert Path(out["PROBABILITIES"]).is_file()
    assert Path(out["POLYGONS"]).is_file()
    assert fb.values and max(fb.values) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("runtime", "name"),
    [("auto", "onnxruntime"), ("torch", "torch"), ("onnxruntime", "onnxruntime")],
)
def test_infer_runtime(scene, trained, tmp_path, feedback_factory, monkeypatch, runtime, name):
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    alg = QgsApplication.processingRegistry().algorithmById("canopygaps:infer")
    param = alg.parameterDefinition("RUNTIME")
    assert param.options() == ["auto", "torch", "onnxruntime"] and param.defaultValue() == "auto"
    assert param.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    monkeypatch.setenv("CANOPYGAPS_CACHE", str(tmp_path / "cache"))
    fb = feedback_factory()
    out = run(
        "infer",
        {
            "DSM": scene["DSM"],
            "MODEL": trained["model"]["OUTPUT"],
            "OUTPUT": str(tmp_path / "gaps.tif"),
            "DEVICE": "cpu",
            "PRECISION": "fp32",
            "RUNTIME": runtime,
            "BACKEND": INPROCESS,
        },
        fb,
    )
    assert bands(out["OUTPUT"]) == 3
    assert any(f"runtime={name}" in m for m in fb.infos), fb.infos


@BACKENDS
def test_evaluate(scene, trained, tmp_path, feedback_factory, backend):
    gaps = run(
        "classical",
        {
            "DSM": scene["DSM"],
            "THRESHOLDS": "2,5,10",
            "OUTPUT": str(tmp_path / "classical.tif"),
            "BACKEND": INPROCESS,
        },
    )
    fb = feedback_factory()
    out = run(
        "evaluate",
        {
            "PREDICTION": gaps["OUTPUT"],
            "REFERENCE": scene["CHM"],
            "DSM": scene["DSM"],
            "MODEL": trained["model"]["OUTPUT"],
            "FIGURES": False,
            "CELL_SIZE": 32,
            "OUTPUT": str(tmp_path / "report"),
            "BACKEND": backend,
        },
        fb,
    )
    assert Path(out["METRICS"]).is_file()
    assert Path(out["REPORT"]).is_file()
    assert 0.0 <= out["MEAN_IOU"] <= 1.0
    assert 0.0 <= out["IOU_5M"] <= 1.0
    assert out["IOU_15M"] is None  # not evaluated


@BACKENDS
def test_classical_from_a_non_geotiff_layer(rasters, tmp_path, feedback_factory, backend):
    from osgeo import gdal

    vrt = str(tmp_path / "dsm.vrt")
    gdal.Translate(vrt, rasters["dsm"], format="VRT")
    fb = feedback_factory()
    out = run(
        "classical",
        {
            "DSM": vrt,
            "WINDOW": 20,
            "THRESHOLDS": "2,5",
            "OUTPUT": str(tmp_path / "gaps.tif"),
            "HEIGHTS": str(tmp_path / "heights.tif"),
            "POLYGONS": str(tmp_path / "gaps.gpkg"),
            "BACKEND": backend,
        },
        fb,
    )
    assert bands(out["OUTPUT"]) == 2
    assert Path(out["HEIGHTS"]).is_file() and Path(out["POLYGONS"]).is_file()
    assert any("temporary GeoTIFF" in m for m in fb.infos)


def test_outputs_load_with_styles(provider, rasters, tmp_path):
    from qgis.core import QgsProject

    project = QgsProject()
    loaded = run_and_load(
        "canopygaps:classical",
        {
            "DSM": rasters["dsm"],
            "WINDOW": 20,
            "OUTPUT": str(tmp_path / "g.tif"),
            "POLYGONS": str(tmp_path / "g.gpkg"),
            "BACKEND": INPROCESS,
        },
        project,
    )
    layers = {source.split("|")[0]: lyr for source, lyr in loaded.items()}
    mask = layers[str(tmp_path / "g.tif")]
    assert mask.renderer().type() == "paletted"
    polygons = layers[str(tmp_path / "g.gpkg")]
    assert polygons.renderer().type() == "graduatedSymbol"
    project.removeAllMapLayers()


# -- bad inputs --------------------------------------------------------------------------------
@BACKENDS
def test_geographic_dsm_is_refused(provider, rasters, tmp_path, backend):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="geographic CRS"):
        run(
            "classical",
            {
                "DSM": rasters["dsm_geographic"],
                "OUTPUT": str(tmp_path / "g.tif"),
                "BACKEND": backend,
            },
        )
    assert not (tmp_path / "g.tif").exists()


def test_missing_model_file(provider, rasters, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="does not exist"):
        run(
            "infer",
            {
                "DSM": rasters["dsm"],
                "MODEL": str(tmp_path / "nope.safetensors"),
                "OUTPUT": str(tmp_path / "g.tif"),
            },
        )


@BACKENDS
def test_engine_error_becomes_processing_exception(provider, rasters, tmp_path, backend):
    """A corrupt model file: the engine's message and hint reach the exception."""
    from qgis.core import QgsProcessingException

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(QgsProcessingException) as info:
        run(
            "infer",
            {
                "DSM": rasters["dsm"],
                "MODEL": str(bad),
                "OUTPUT": str(tmp_path / "g.tif"),
                "BACKEND": backend,
            },
        )
    assert "bad.safetensors" in str(info.value)
    assert not (tmp_path / "g.tif").exists()


@BACKENDS
def test_full_disk_becomes_processing_exception(provider, rasters, tmp_path, backend):
    """A full disk (a 16 KB tmpfs): the engine's plain message reaches QGIS, nothing is left."""
    from qgis.core import QgsProcessingException

    from tests.reliability_helpers import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "disk", "size=16k") as disk:
        with pytest.raises(QgsProcessingException) as info:
            run(
                "classical",
                {
                    "DSM": rasters["dsm"],
                    "OUTPUT": str(disk / "g.tif"),
                    "HEIGHTS": str(disk / "h.tif"),
                    "BACKEND": backend,
                },
            )
        left = sorted(p.name for p in disk.iterdir())
    text = str(info.value)
    assert f"The disk holding {disk} is full (No space left on device)" in text, text
    assert "Free some space on that disk" in text
    assert left == []


def test_subprocess_with_a_missing_interpreter(provider, rasters, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    monkeypatch.setenv("CANOPYGAPS_PYTHON", str(tmp_path / "no-python"))
    with pytest.raises(QgsProcessingException, match="interpreter"):
        run(
            "classical",
            {"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.tif"), "BACKEND": SUBPROCESS},
        )


def test_subprocess_without_the_engine(provider, rasters, tmp_path, monkeypatch):
    """A Python that cannot import the engine: a fix-it message, not a traceback."""
    from qgis.core import QgsProcessingException

    import chm_plugin.backends.subprocess_backend as sb

    monkeypatch.setattr(sb, "engine_root", lambda: None)
    monkeypatch.setenv("CANOPYGAPS_PYTHON", "/usr/bin/python3")
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
    with pytest.raises(QgsProcessingException, match=r"cannot import the canopygaps engine"):
        run("diagnostics", {"BACKEND": SUBPROCESS})


def aggregate_ious(metrics: str) -> dict[str, dict[float, float]]:
    import json

    doc = json.loads(Path(metrics).read_text())
    return {
        label: {b["threshold_m"]: b["pixel"]["iou"] for b in method["thresholds"]}
        for label, method in doc["aggregate"]["methods"].items()
    }


def test_evaluate_reports_each_method(scene, trained, tmp_path):
    """GAP_MASK_*, MODEL_* and CLASSICAL_* outputs hold each method's figures of metrics.json;
    MEAN_IOU/IOU_*M are the gap mask's, else the model's (never the classical method's)."""
    from statistics import mean

    mask = run(
        "classical",
        {
            "DSM": scene["DSM"],
            "THRESHOLDS": "2,5,10",
            "METHOD": "smoothed_minimum",  # unlike the classical baseline: other figures
            "WINDOW": 12,
            "OUTPUT": str(tmp_path / "mask.tif"),
            "BACKEND": INPROCESS,
        },
    )
    model = trained["model"]["OUTPUT"]
    common = {
        "REFERENCE": scene["CHM"],
        "DSM": scene["DSM"],
        "MODEL": model,
        "CLASSICAL": True,
        "FIGURES": False,
        "BACKEND": INPROCESS,
    }
    out = run("evaluate", {**common, "PREDICTION": mask["OUTPUT"], "OUTPUT": str(tmp_path / "r1")})
    ious = aggregate_ious(out["METRICS"])
    labels = {"GAP_MASK": "gap_mask", "MODEL": Path(model).stem, "CLASSICAL": "classical"}
    assert set(labels.values()) <= set(ious)
    for prefix, label in labels.items():
        for t in (2, 5, 10):
            assert out[f"{prefix}_IOU_{t}M"] == pytest.approx(ious[label][float(t)])
        assert out[f"{prefix}_IOU_15M"] is None and out[f"{prefix}_IOU_20M"] is None
        assert out[f"{prefix}_MEAN_IOU"] == pytest.approx(mean(ious[label].values()))
    assert len({out[f"{p}_MEAN_IOU"] for p in labels}) == 3  # three different methods
    assert out["MEAN_IOU"] == out["GAP_MASK_MEAN_IOU"] and out["IOU_5M"] == out["GAP_MASK_IOU_5M"]
    out = run("evaluate", {**common, "OUTPUT": str(tmp_path / "r2")})
    ious = aggregate_ious(out["METRICS"])
    assert out["MODEL_IOU_5M"] == pytest.approx(ious[Path(model).stem][5.0])
    assert out["CLASSICAL_IOU_5M"] == pytest.approx(ious["classical"][5.0])
    assert out["MEAN_IOU"] == out["MODEL_MEAN_IOU"] != out["CLASSICAL_MEAN_IOU"]
    assert out["GAP_MASK_MEAN_IOU"] is None
