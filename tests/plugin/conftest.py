"""Fixtures of the QGIS plugin tests: the registered provider and tiny generated rasters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))

os.environ.setdefault("CANOPYGAPS_PYTHON", PYTHON)


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory) -> Path:
    """dist/chm_plugin-<version>.zip built by scripts/package_plugin.py (once per session)."""
    import subprocess

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


def write_geotiff(
    path: Path,
    array: np.ndarray,
    epsg: int = 32633,
    pixel: float = 1.0,
    nodata: float | None = -9999.0,
    origin=(500000.0, 5500000.0),
) -> Path:
    """Write a single-band float32 GeoTIFF with GDAL (QGIS's own)."""
    from osgeo import gdal, osr

    rows, cols = array.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, 1, gdal.GDT_Float32)
    if epsg == 4326:
        ds.SetGeoTransform((10.0, pixel * 1e-5, 0, 50.0, 0, -pixel * 1e-5))
    else:
        ds.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array.astype("float32"))
    ds = None
    return path


def scene(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dsm, dtm, chm): a gently sloping ground, ~25 m canopy with a few square gaps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    dtm = 300.0 + 0.05 * xx + 0.03 * yy
    chm = 22.0 + 3.0 * rng.random((size, size)).astype("float32")
    for r, c, s in ((8, 8, 10), (36, 20, 14), (20, 44, 8), (48, 48, 12)):
        chm[r : r + s, c : c + s] = rng.random((s, s)) * 1.5
    return dtm + chm, dtm, chm


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


class RecordingFeedback:
    """Factory of a QgsProcessingFeedback that records progress and messages."""

    @staticmethod
    def create(cancel_after_progress: bool = False):
        from qgis.core import QgsProcessingFeedback

        class _Feedback(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.values: list[float] = []
                self.infos: list[str] = []
                self.commands: list[str] = []
                self.progressChanged.connect(self._on_progress)

            def _on_progress(self, value):
                self.values.append(value)
                if cancel_after_progress and not self.isCanceled():
                    self.cancel()

            def pushInfo(self, info):
                self.infos.append(info)
                super().pushInfo(info)

            def pushCommandInfo(self, info):
                self.commands.append(info)
                super().pushCommandInfo(info)

        return _Feedback()


@pytest.fixture
def feedback_factory():
    return RecordingFeedback.create
