"""Out of the box: zip -> fresh profile -> Install engine -> infer with the default model.

The fast test runs the real installer (venv from the system Python, pip, checks, marker) with
a requirements file holding one small local wheel whose .pth file points at the test
environment's packages: it stands in for downloading PyTorch (about 1 GB) and keeps the test
offline and under two minutes. The slow test installs the real pinned requirements with pip's
configured index (``RUN_SLOW=1``).
"""

from __future__ import annotations

import json
import site
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.plugin.fresh_profile import FreshProfile, qgis_process_binary
from tests.plugin.helpers import scene, write_geotiff

pytestmark = [
    pytest.mark.qgis,
    pytest.mark.skipif(qgis_process_binary() is None, reason="qgis_process is not installed"),
]
SHIM = "canopygaps_test_site"


def runner_site_packages() -> Path:
    """Site-packages of the Python running the tests (it has torch & co.)."""
    return Path(next(p for p in site.getsitepackages() if "site-packages" in p))


def shim_wheel(folder: Path) -> Path:
    """A wheel holding only a .pth file that exposes the test environment's packages (all but
    canopygaps itself, which the installer must install from the plugin's own wheel)."""
    exposed = folder / "exposed"
    exposed.mkdir()
    for entry in runner_site_packages().iterdir():
        name = entry.name
        if name.startswith(
            ("canopygaps", "__editable__", "_distutils_hack", "pip")
        ) or name.endswith(".pth"):
            continue
        (exposed / name).symlink_to(entry)
    dist = f"{SHIM}-0.dist-info"
    files = {
        # first on sys.path, as pip would install them (torch needs a newer setuptools than
        # the venv's own)
        f"{SHIM}.pth": f"import sys; sys.path.insert(1, {str(exposed)!r})\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {SHIM}\nVersion: 0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{n},,\n" for n in [*files, f"{dist}/RECORD"])
    wheel = folder / f"{SHIM}-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def dsm_file(tmp_path: Path) -> str:
    dsm, _dtm, _chm = scene(96, seed=5)
    return str(write_geotiff(tmp_path / "site_dsm.tif", dsm))


def check_out_of_the_box(profile: FreshProfile, tmp_path: Path, **install) -> None:
    # 1. Before: no engine Python anywhere -> a message naming Install engine, not a traceback
    done = profile.run("diagnostics")
    assert done.returncode == 1
    assert "Install engine" in done.stdout + done.stderr
    # 2. Install engine: pip's output and the progress reach the log
    done = profile.run("install_engine", json_output=False, **install)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Successfully installed canopygaps" in done.stdout and "100 - done." in done.stdout
    python = profile.venv / "bin" / "python"
    assert f"ENGINE_PYTHON:\t{python}" in done.stdout
    assert (
        python.parent.parent == profile.venv and (profile.venv / "canopygaps-engine.json").is_file()
    )
    assert not list(profile.venv.parent.glob(".engine-venv.part-*"))
    # the engine package itself went into the venv (not only found through the plugin folder)
    done = subprocess.run(
        [str(python), "-c", "import engine, json; print(json.dumps(engine.__file__))"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert str(profile.venv) in json.loads(done.stdout), done.stdout + done.stderr
    # 3. Diagnostics now pass through that Python
    out = profile.run_ok("diagnostics")
    assert str(profile.venv) in out["ENGINE_PYTHON"] and out["TORCH_VERSION"] != "None"
    # 4. infer with the default MODEL
    gaps = tmp_path / "gaps.tif"
    out = profile.run_ok("infer", DSM=dsm_file(tmp_path), OUTPUT=gaps)
    from osgeo import gdal

    ds = gdal.Open(str(out["OUTPUT"]))
    assert ds.RasterCount == 5 and ds.GetRasterBand(5).GetDescription() == "gap <= 20 m"
    # 5. Installing again is a no-op
    out = profile.run_ok("install_engine")
    assert Path(out["ENGINE_PYTHON"]) == python


def test_zip_fresh_profile_install_engine_infer(plugin_zip, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{shim_wheel(wheels)}\n")
    profile = FreshProfile(tmp_path, plugin_zip)
    check_out_of_the_box(
        profile,
        tmp_path,
        REQUIREMENTS=requirements,
        PIP_ARGS=f"--no-index --find-links={wheels}",
    )


def test_install_failure_keeps_nothing(plugin_zip, tmp_path):
    """pip fails (offline, nothing to install from): a clear message, no venv, no leftovers."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("canopygaps-no-such-package==1.0\n")
    profile = FreshProfile(tmp_path, plugin_zip)
    done = profile.run("install_engine", REQUIREMENTS=requirements, PIP_ARGS="--no-index")
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert "Installing the engine's packages failed" in text and "Extra pip arguments" in text
    assert not profile.venv.exists()
    assert not list(profile.venv.parent.glob(".engine-venv*"))


@pytest.mark.slow
def test_zip_fresh_profile_real_install(plugin_zip, tmp_path):
    """The real thing: the pinned requirements from pip's configured index (minutes)."""
    profile = FreshProfile(tmp_path, plugin_zip)
    check_out_of_the_box(profile, tmp_path)
