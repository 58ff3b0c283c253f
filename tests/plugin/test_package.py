"""The plugin zip: contents, and an algorithm run from a fresh profile with qgis_process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.plugin.helpers import PYTHON, ROOT

pytestmark = pytest.mark.qgis

QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (zip_path,) = out.glob("chm_plugin-*.zip")
    return zip_path


def test_package_contents(package):
    names = zipfile.ZipFile(package).namelist()
    assert {n.split("/")[0] for n in names} == {"chm_plugin"}
    for required in (
        "chm_plugin/metadata.txt",
        "chm_plugin/LICENSE",
        "chm_plugin/__init__.py",
        "chm_plugin/icon.svg",
        "chm_plugin/provider.py",
        "chm_plugin/runner.py",
        "chm_plugin/backends/docker.py",
        "chm_plugin/vendor/engine/api.py",
        "chm_plugin/vendor/engine/cli.py",
        "chm_plugin/resources/styles/gap_mask.qml",
        "chm_plugin/resources/canopygaps_chain.model3",
    ):
        assert required in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    meta = zipfile.ZipFile(package).read("chm_plugin/metadata.txt").decode()
    version = next(line.split("=")[1] for line in meta.splitlines() if line.startswith("version="))
    assert package.name == f"chm_plugin-{version}.zip"
    for key in (
        "name",
        "qgisMinimumVersion",
        "description",
        "about",
        "author",
        "email",
        "repository",
        "tracker",
        "tags",
        "category",
        "icon",
        "hasProcessingProvider",
    ):
        assert f"\n{key}=" in meta, key
    assert (
        "GNU GENERAL PUBLIC LICENSE" in zipfile.ZipFile(package).read("chm_plugin/LICENSE").decode()
    )


@pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process is not installed")
def test_installed_package_runs_in_a_fresh_profile(package, rasters, tmp_path):
    profile = tmp_path / "profile"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(package).extractall(plugins)
    env = dict(
        os.environ,
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        QT_QPA_PLATFORM="offscreen",
        CANOPYGAPS_PYTHON=PYTHON,
        OMP_NUM_THREADS="1",
    )
    env.pop("QGIS_PLUGINPATH", None)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the .pyc files show which engine was imported

    def qgis_process(*args):
        return subprocess.run(
            [QGIS_PROCESS, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )

    done = qgis_process("plugins", "enable", "chm_plugin")
    assert done.returncode == 0, done.stdout + done.stderr
    done = qgis_process(
        "run",
        "canopygaps:classical",
        "--json",
        "--",
        f"DSM={rasters['dsm']}",
        "THRESHOLDS=2,5",
        "WINDOW=20",
        f"OUTPUT={tmp_path / 'gaps.tif'}",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout[done.stdout.index("{") :])["results"]
    assert Path(results["OUTPUT"]).is_file()
    # the subprocess imported the engine bundled in the zip, not the checkout's
    assert list((plugins / "chm_plugin" / "vendor" / "engine").glob("__pycache__/*.pyc"))
