"""The plugin zip: contents, metadata, help page, and an algorithm run from a fresh profile."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from tests.plugin.fresh_profile import FreshProfile, qgis_process_binary
from tests.plugin.helpers import PYTHON, ROOT

pytestmark = pytest.mark.qgis


def test_package_contents(plugin_zip):
    zf = zipfile.ZipFile(plugin_zip)
    names = zf.namelist()
    assert {n.split("/")[0] for n in names} == {"chm_plugin"}
    for required in (
        "chm_plugin/metadata.txt",
        "chm_plugin/LICENSE",
        "chm_plugin/__init__.py",
        "chm_plugin/icon.svg",
        "chm_plugin/icons/infer.svg",
        "chm_plugin/provider.py",
        "chm_plugin/runner.py",
        "chm_plugin/engine_schema.json",
        "chm_plugin/help/index.html",
        "chm_plugin/backends/docker.py",
        "chm_plugin/vendor/engine/api.py",
        "chm_plugin/vendor/engine/cli.py",
        "chm_plugin/vendor/requirements.txt",
        "chm_plugin/resources/styles/gap_mask.qml",
        "chm_plugin/resources/canopygaps_chain.model3",
        "chm_plugin/resources/models/default.safetensors",
        "chm_plugin/resources/models/default.json",
    ):
        assert required in names, required
    assert [n for n in names if re.match(r"chm_plugin/vendor/wheels/canopygaps-.*\.whl$", n)]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    assert (
        zf.read("chm_plugin/resources/models/default.safetensors")
        == (ROOT / "resources" / "models" / "default.safetensors").read_bytes()
    )
    assert zf.read("chm_plugin/vendor/requirements.txt") == (ROOT / "requirements.txt").read_bytes()
    assert "GNU GENERAL PUBLIC LICENSE" in zf.read("chm_plugin/LICENSE").decode()


def test_metadata_has_no_placeholders(plugin_zip):
    meta = zipfile.ZipFile(plugin_zip).read("chm_plugin/metadata.txt").decode()
    fields = dict(line.split("=", 1) for line in meta.splitlines() if "=" in line)
    assert plugin_zip.name == f"chm_plugin-{fields['version']}.zip"
    for key in ("name", "qgisMinimumVersion", "description", "about", "author", "tags"):
        assert fields.get(key), key
    assert fields["hasProcessingProvider"] == "yes" and fields["icon"] == "icon.svg"
    # no invented addresses: there is no public repository, and about= says so
    assert "example." not in meta and "@" not in meta
    assert not {"email", "homepage", "repository", "tracker"} & set(fields)
    assert "no public source repository" in fields["about"]
    assert "Install engine" in fields["about"]


def test_help_page_has_every_algorithm_anchor(plugin_zip, provider):
    page = zipfile.ZipFile(plugin_zip).read("chm_plugin/help/index.html").decode()
    ids = set(re.findall(r' id="([^"]+)"', page))
    for alg in provider.algorithms():
        anchor = alg.helpUrl().rsplit("#", 1)[1]
        assert anchor in ids, (alg.id(), anchor)


def test_installed_package_runs_in_a_fresh_profile(plugin_zip, rasters, tmp_path):
    """The zip in a fresh profile with the engine's Python given: the bundled engine runs."""
    if qgis_process_binary() is None:
        pytest.skip("qgis_process is not installed")
    profile = FreshProfile(tmp_path, plugin_zip, env={"CANOPYGAPS_PYTHON": PYTHON})
    results = profile.run_ok(
        "classical",
        DSM=rasters["dsm"],
        THRESHOLDS="2,5",
        WINDOW=20,
        OUTPUT=tmp_path / "gaps.tif",
    )
    assert Path(results["OUTPUT"]).is_file()
    # the subprocess imported the engine bundled in the zip, not the checkout's
    assert list((profile.plugin_dir / "vendor" / "engine").glob("__pycache__/*.pyc"))
    assert json.loads((profile.plugin_dir / "engine_schema.json").read_text())["commands"]
