"""Messages speak QGIS: parameters and actions, not engine keys, commands or shell tools; a
missing package always says what to install and names 'Install engine'."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.plugin.helpers import scene, write_geotiff

pytestmark = pytest.mark.qgis

ENGINE_SPEAK = ("Config key", "canopygaps preprocess", "canopygaps train", "gdalwarp", "gdal_")


def run(alg, params):
    import processing

    return processing.run(f"canopygaps:{alg}", params)


def failure(alg, params) -> str:
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as info:
        run(alg, params)
    text = str(info.value)
    for phrase in ENGINE_SPEAK:
        assert phrase not in text, (phrase, text)
    return text


def test_engine_hints_in_qgis_terms():
    from chm_plugin.messages import to_qgis
    from engine.io.checks import REPROJECT_HINT

    names = {
        "resample": "'Resample to the model's pixel size' (RESAMPLE)",
        "band": "'DSM band' (BAND)",
    }
    assert to_qgis(REPROJECT_HINT) == (
        "Reproject it to a projected CRS in metres (e.g. the local UTM zone) with QGIS Raster > "
        "Projections > Warp (Reproject)."
    )
    text = to_qgis(
        "Set 'resample' to true to resample it on the fly, or resample it to 1 m yourself "
        "(gdalwarp -tr 1 1 -r bilinear in.tif out.tif).",
        names,
    )
    assert text.startswith("Set 'Resample to the model's pixel size' (RESAMPLE) to true")
    assert "gdalwarp" not in text and "Warp (Reproject)" in text
    assert to_qgis("Run 'canopygaps preprocess' first.") == "Run 'Build training dataset' first."
    assert to_qgis("Run preprocess again.") == "Run 'Build training dataset' again."
    text = to_qgis(
        "Extract the height band first (e.g. 'gdal_translate -b 1 in.tif out.tif' or QGIS "
        "Rearrange bands) and give a 1-band raster.",
        names,
    )
    assert text == "Choose the band holding the heights with 'DSM band' (BAND)."
    text = to_qgis("Install it into the engine's Python: python -m pip install tensorboard")
    assert "pip" not in text and "tensorboard" in text and "Install engine" in text
    text = to_qgis("Config key 'margin' = -1: must not be negative.")
    assert text == "Engine setting 'margin' = -1: must not be negative."
    names = {"min_gap_area_m2": "'Smallest gap (m²)' (MIN_GAP_AREA)", "sites[].dsm": "'DSM' (DSM)"}
    assert to_qgis("min_gap_area_m2 must be set; see sites[demo].dsm.", names) == (
        "'Smallest gap (m²)' (MIN_GAP_AREA) must be set; see 'DSM' (DSM)."
    )


def test_missing_dependency_event_names_install_engine():
    from chm_plugin.runner import error_text

    text = error_text(
        {
            "type": "MissingDependencyError",
            "message": "runtime 'onnxruntime' needs the Python package(s) onnx.",
            "hint": "Install them into the engine's Python (python -m pip install onnxruntime "
            "onnx), or use runtime 'torch'.",
        }
    )
    assert "pip install" not in text and "Install engine" in text and "onnx" in text


@pytest.fixture
def dsm_2m(tmp_path) -> str:
    dsm, _dtm, _chm = scene(64)
    return str(write_geotiff(tmp_path / "dsm_2m.tif", dsm, pixel=2.0))


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_engine_errors_name_parameters(provider, dsm_2m, tmp_path, backend):
    text = failure("infer", {"DSM": dsm_2m, "OUTPUT": str(tmp_path / "g.tif"), "BACKEND": backend})
    assert "'Resample to the model's pixel size' (RESAMPLE)" in text
    assert "'resample'" not in text
    text = failure(
        "classical",
        {"DSM": dsm_2m, "THRESHOLDS": "0,2", "OUTPUT": str(tmp_path / "g.tif"), "BACKEND": backend},
    )
    assert text.startswith("'Thresholds (m)' (THRESHOLDS)")
    assert "must be greater than 0" in text and "'thresholds'" not in text
    (tmp_path / "not-a-dataset").mkdir()
    text = failure(
        "train",
        {
            "DATASET": str(tmp_path / "not-a-dataset"),
            "OUTPUT": str(tmp_path / "m.safetensors"),
            "BACKEND": backend,
        },
    )
    assert "'Build training dataset'" in text


def test_band_of_a_multi_band_dsm(provider, tmp_path):
    from osgeo import gdal

    from tests.plugin.test_request_mapping import write_bands

    dsm, _dtm, _chm = scene(64)
    multi = write_bands(tmp_path / "multi.tif", [np.zeros_like(dsm), dsm])
    text = failure("classical", {"DSM": multi, "OUTPUT": str(tmp_path / "g.tif")})
    assert "'DSM band' (BAND)" in text
    params = {"THRESHOLDS": "2,5", "WINDOW": 20, "BACKEND": "inprocess"}
    a = run("classical", {"DSM": multi, "BAND": 2, "OUTPUT": str(tmp_path / "a.tif"), **params})
    single = str(write_geotiff(tmp_path / "single.tif", dsm))
    b = run("classical", {"DSM": single, "OUTPUT": str(tmp_path / "b.tif"), **params})
    read = [gdal.Open(x["OUTPUT"]).ReadAsArray() for x in (a, b)]
    np.testing.assert_array_equal(*read)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A Python without numpy, rasterio or torch (a venv without system packages)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def test_missing_module_in_the_engine_python(provider, rasters, tmp_path, monkeypatch, bare_python):
    monkeypatch.setenv("CANOPYGAPS_PYTHON", bare_python)
    for alg, params in (
        ("classical", {"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.tif")}),
        ("diagnostics", {}),
    ):
        text = failure(alg, {**params, "BACKEND": "subprocess"})
        assert "lacks" in text and "numpy" in text and "Install engine" in text, text
    assert not (tmp_path / "g.tif").exists()


def test_diagnostics_fails_without_torch(provider, monkeypatch):
    """A Python with GDAL, rasterio and numpy but no torch: diagnostics fails, naming torch."""
    probe = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system Python has torch")
    monkeypatch.setenv("CANOPYGAPS_PYTHON", "/usr/bin/python3")
    text = failure("diagnostics", {"BACKEND": "subprocess"})
    assert "lacks" in text and "torch" in text and "Install engine" in text


def test_in_process_import_error_names_install_engine(provider, rasters, tmp_path, monkeypatch):
    from chm_plugin.backends import inprocess

    def broken():
        raise ImportError("No module named 'rasterio'")

    monkeypatch.setattr(inprocess, "import_engine_api", broken)
    text = failure(
        "classical",
        {"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.tif"), "BACKEND": "inprocess"},
    )
    assert "rasterio" in text and "Install engine" in text


def test_docker_daemon_message(provider, rasters, tmp_path, monkeypatch):
    """Docker without a daemon: Docker's own error line, not just 'exited with code 125'."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        "echo 'docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?.' >&2\n"
        "echo \"See 'docker run --help'.\" >&2\n"
        "exit 125\n"
    )
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    text = failure(
        "classical",
        {"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "out" / "g.tif"), "BACKEND": "docker"},
    )
    assert "Cannot connect to the Docker daemon" in text and "Start Docker" in text
    assert "docker run --help" not in text
    assert not Path(tmp_path / "out" / "g.tif").exists()
