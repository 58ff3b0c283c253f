"""Fixtures of the QGIS plugin tests: the registered provider and tiny generated rasters."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.plugin.helpers import PYTHON, ROOT, RecordingFeedback, scene, write_geotiff

os.environ.setdefault("CANOPYGAPS_PYTHON", PYTHON)


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory) -> Path:
    """dist/chm_plugin-<version>.zip built by scripts/package_plugin.py (once per session)."""

    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "package_plugin.py"), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (zip_path,) = out.glob("chm_plugin-*.zip")
    return zip_path


@pytest.fixture(scope="session")
def provider(qgis_processing):
    """The Canopy gaps provider, registered once (kept referenced: else algorithms vanish)."""
    from qgis.core import QgsApplication

    from chm_plugin.provider import CanopyGapsProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("canopygaps")
    if existing is not None:
        yield existing
        return
    prov = CanopyGapsProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


@pytest.fixture
def rasters(tmp_path: Path) -> dict[str, str]:
    """Tiny projected DSM/DTM/CHM GeoTIFFs (64 x 64, 1 m) and a geographic-CRS DSM."""
    dsm, dtm, chm = scene()
    return {
        "dsm": str(write_geotiff(tmp_path / "dsm.tif", dsm)),
        "dtm": str(write_geotiff(tmp_path / "dtm.tif", dtm)),
        "chm": str(write_geotiff(tmp_path / "chm.tif", chm)),
        "dsm_geographic": str(write_geotiff(tmp_path / "dsm_wgs84.tif", dsm, epsg=4326)),
    }


@pytest.fixture
def feedback_factory():
    return RecordingFeedback.create
