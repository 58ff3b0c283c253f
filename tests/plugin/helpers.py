"""Helpers of the QGIS plugin tests: paths, tiny generated rasters, a recording feedback.

Importable as ``tests.plugin.helpers`` (fixtures live in ``conftest.py``). GDAL/QGIS are
imported inside the functions, so importing this module needs neither.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))


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


def run_and_load(alg_id: str, params: dict, project):
    """``processing.runAndLoadResults`` into ``project`` (a ``QgsProject`` of the test's own)
    instead of ``QgsProject.instance()``: the same post-processing (Processing loads the
    outputs, the plugin's post-processors style them), without the session-wide project that
    other tests' dialogs, widgets and pytest-qgis's stand-in canvas listen to. Returns
    ``project``'s layers by source."""
    from processing.core.Processing import Processing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingOutputLayerDefinition,
        QgsProcessingParameterRasterDestination,
        QgsProcessingParameterVectorDestination,
    )

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    destinations = (
        QgsProcessingParameterRasterDestination,
        QgsProcessingParameterVectorDestination,
    )
    params = dict(params)
    for param in alg.parameterDefinitions():
        if param.name() in params and isinstance(param, destinations):
            params[param.name()] = QgsProcessingOutputLayerDefinition(params[param.name()], project)
    context = QgsProcessingContext()
    context.setProject(project)
    Processing.runAlgorithm(alg, params, onFinish=handleAlgorithmResults, context=context)
    return {lyr.source(): lyr for lyr in project.mapLayers().values()}
