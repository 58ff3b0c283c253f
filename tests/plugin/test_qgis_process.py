"""qgis_process end to end: enable the plugin, list, run with '-- KEY=VALUE', exit codes.

Uses scripts/qgis_process.sh (qgis_process.bin headless, a temporary profile, this checkout's
plugin), as the demo does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.plugin.helpers import PYTHON, ROOT

pytestmark = [
    pytest.mark.qgis,
    pytest.mark.skipif(
        not (shutil.which("qgis_process.bin") or shutil.which("qgis_process")),
        reason="qgis_process is not installed",
    ),
]

WRAPPER = ROOT / "scripts" / "qgis_process.sh"
ALGORITHMS = ["preprocess", "train", "infer", "evaluate", "classical", "synth", "diagnostics"]


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qgis-profile")


def qgis_process(profile: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        QT_QPA_PLATFORM="offscreen",
        CANOPYGAPS_PYTHON=PYTHON,
        OMP_NUM_THREADS="1",
    )
    env.pop("QGIS_PLUGINPATH", None)
    return subprocess.run(
        ["bash", str(WRAPPER), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def run_ok(profile: Path, alg: str, **params) -> dict:
    args = ["run", f"canopygaps:{alg}", "--json", "--"]
    args += [f"{k}={v}" for k, v in params.items()]
    done = qgis_process(profile, *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    start = done.stdout.index("{")
    return json.loads(done.stdout[start:])["results"]


def test_list_shows_the_algorithms(profile):
    done = qgis_process(profile, "list")
    assert done.returncode == 0, done.stderr
    for alg in ALGORITHMS:
        assert f"canopygaps:{alg}" in done.stdout


def test_help_of_an_algorithm(profile):
    done = qgis_process(profile, "help", "canopygaps:infer")
    assert done.returncode == 0, done.stderr
    assert "MODEL" in done.stdout and "safetensors" in done.stdout


def test_diagnostics_and_classical_run(profile, rasters, tmp_path):
    out = run_ok(profile, "diagnostics")
    assert out["QGIS_VERSION"].startswith("3.")
    assert out["TORCH_VERSION"]
    out = run_ok(
        profile,
        "classical",
        DSM=rasters["dsm"],
        THRESHOLDS="2,5",
        WINDOW=20,
        OUTPUT=tmp_path / "gaps.tif",
        POLYGONS=tmp_path / "gaps.gpkg",
    )
    assert Path(out["OUTPUT"]).is_file() and Path(out["POLYGONS"]).is_file()


def test_bad_input_exits_1(profile, rasters, tmp_path):
    done = qgis_process(
        profile,
        "run",
        "canopygaps:classical",
        "--",
        f"DSM={rasters['dsm_geographic']}",
        f"OUTPUT={tmp_path / 'g.tif'}",
    )
    assert done.returncode == 1
    assert "geographic CRS" in done.stdout + done.stderr
    done = qgis_process(
        profile,
        "run",
        "canopygaps:infer",
        "--",
        f"DSM={rasters['dsm']}",
        f"MODEL={tmp_path / 'missing.safetensors'}",
        f"OUTPUT={tmp_path / 'g.tif'}",
    )
    assert done.returncode == 1
    assert not (tmp_path / "g.tif").exists()


@pytest.mark.slow  # 30 s of CPU; each algorithm also runs in tests/plugin/test_algorithms.py
def test_every_algorithm_runs(profile, tmp_path):
    scene = run_ok(profile, "synth", SIZE=96, SEED=2, GAPS=4, OUTPUT=tmp_path / "scene")
    ds = run_ok(
        profile,
        "preprocess",
        DSM=scene["DSM"],
        REFERENCE=scene["CHM"],
        TILE_SIZE=32,
        THRESHOLDS="2,5,10",
        OUTPUT=tmp_path / "dataset",
    )
    model = run_ok(
        profile,
        "train",
        DATASET=ds["OUTPUT"],
        OUTPUT=tmp_path / "m.safetensors",
        EPOCHS=1,
        MAX_STEPS=2,
        BASE_CHANNELS=4,
        DEPTH=2,
        DEVICE="cpu",
        TENSORBOARD=False,
    )
    gaps = run_ok(
        profile,
        "infer",
        DSM=scene["DSM"],
        MODEL=model["OUTPUT"],
        DEVICE="cpu",
        OUTPUT=tmp_path / "gaps.tif",
        POLYGONS=tmp_path / "gaps.gpkg",
    )
    report = run_ok(
        profile,
        "evaluate",
        PREDICTION=gaps["OUTPUT"],
        REFERENCE=scene["CHM"],
        FIGURES=False,
        OUTPUT=tmp_path / "report",
    )
    assert 0.0 <= report["MEAN_IOU"] <= 1.0
    assert Path(report["METRICS"]).is_file()
