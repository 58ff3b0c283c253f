"""Outputs in any GDAL raster or OGR vector format QGIS offers.

The engine writes GeoTIFF rasters and GeoPackage polygons. An output asked for in another
format (by extension: ``gaps.sdat``, ``gaps.shp``), or as an ``ogr:`` URI naming a layer
(``ogr:dbname='x.gpkg' table="gaps" (geom)``), is written by the engine to a temporary
GeoTIFF/GeoPackage and converted here with GDAL once the engine succeeded. The conversion is
as atomic as the engine's own outputs: it writes into a temporary folder next to the
destination and moves the file(s) in only when GDAL finished (a layer added to an existing
GeoPackage goes into a copy of it, which then replaces the original).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qgis.core import (
    QgsDataSourceUri,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRasterFileWriter,
    QgsVectorFileWriter,
)

if TYPE_CHECKING:
    from chm_plugin.backends.base import EngineRequest

ENGINE_RASTER = (".tif", ".tiff")
ENGINE_VECTOR = ".gpkg"


@dataclass
class OutputTarget:
    """One output: the file (and layer) asked for, and the file the engine writes."""

    kind: str  # "raster" or "vector"
    path: str  # the final file, absolute
    engine_path: str  # what the engine writes: ``path`` itself or a temporary file
    driver: str = ""  # GDAL/OGR driver of the conversion ("" = the engine writes ``path``)
    layer: str = ""  # layer name inside ``path`` (ogr: URIs)
    requested: str = ""  # the destination as Processing gave it

    @property
    def converts(self) -> bool:
        return bool(self.driver)

    def source(self) -> str:
        """The layer source QGIS loads."""
        return f"{self.path}|layername={self.layer}" if self.layer else self.path


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _temp(name: str, suffix: str) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in Path(name).stem)[:40] or "output"
    return QgsProcessingUtils.generateTempFilename(f"{stem}-{uuid.uuid4().hex[:8]}{suffix}")


def _driver(kind: str, path: str) -> str:
    """The GDAL (raster) or OGR (vector) driver writing ``path``, by its extension."""
    suffix = Path(path).suffix.lower()
    writer = QgsRasterFileWriter if kind == "raster" else QgsVectorFileWriter
    driver = writer.driverForExtension(suffix.lstrip("."))
    if not driver:
        usual = "GeoTIFF (.tif)" if kind == "raster" else "GeoPackage (.gpkg)"
        raise QgsProcessingException(
            f"No {kind} format writes '{suffix or Path(path).name}' files: give the output a "
            f"{usual} name or another extension from the file dialog's list."
        )
    return driver


def raster_target(value: str) -> OutputTarget:
    """Where the engine writes a raster asked for as ``value`` (a file path)."""
    path = _absolute(value.split("|", 1)[0])
    if Path(path).suffix.lower() in ENGINE_RASTER:
        return OutputTarget("raster", path, path, requested=value)
    driver = _driver("raster", path)
    return OutputTarget("raster", path, _temp(path, ".tif"), driver, requested=value)


def _split_vector(value: str) -> tuple[str, str]:
    if value.startswith("ogr:"):
        uri = QgsDataSourceUri(value[4:])
        return (uri.database() or value[4:].split("|", 1)[0]), uri.table()
    path, _, options = value.partition("|")
    layer = options.split("layername=", 1)[1].split("|")[0] if "layername=" in options else ""
    return path, layer


def vector_target(value: str) -> OutputTarget:
    """Where the engine writes polygons asked for as ``value`` (path or ``ogr:`` URI)."""
    path, layer = _split_vector(value)
    path = _absolute(path)
    if Path(path).suffix.lower() == ENGINE_VECTOR and not layer:
        return OutputTarget("vector", path, path, requested=value)
    driver = _driver("vector", path)
    return OutputTarget("vector", path, _temp(path, ENGINE_VECTOR), driver, layer, value)


def _gdal():
    from osgeo import gdal

    gdal.UseExceptions()
    return gdal


def convert(target: OutputTarget) -> None:
    """Convert the engine's file into ``target`` (temporary folder, then moved in)."""
    final = Path(target.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".{final.stem}.part-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        out = work / final.name
        gdal = _gdal()
        if target.kind == "raster":
            gdal.Translate(str(out), target.engine_path, format=target.driver)
        else:
            if target.layer and final.exists():
                shutil.copy2(final, out)  # add or replace one layer of an existing file
            gdal.VectorTranslate(
                str(out),
                target.engine_path,
                format=target.driver,
                layerName=target.layer or final.stem,
                accessMode="overwrite" if out.exists() else None,
            )
        for produced in sorted(work.iterdir()):
            os.replace(produced, final.parent / produced.name)
    except RuntimeError as exc:
        why = " ".join(str(exc).split())
        if "band count" in why:
            why += " (gap masks have one band per threshold; this format holds fewer)"
        raise QgsProcessingException(
            f"Could not write {final.name} as {target.driver}: {why}. Choose another format "
            "(GeoTIFF for rasters, GeoPackage for polygons always work)."
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rekey_layer(context: QgsProcessingContext | None, old: str, new: str) -> None:
    """Load ``new`` on completion where Processing planned to load ``old``."""
    if old == new or context is None or not context.willLoadLayerOnCompletion(old):
        return
    layers = context.layersToLoadOnCompletion()
    layers[new] = layers.pop(old)
    context.setLayersToLoadOnCompletion(layers)


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return new if value == old else value


def finish_outputs(
    request: EngineRequest,
    result: dict[str, Any],
    context: QgsProcessingContext | None,
    feedback: QgsProcessingFeedback | None,
) -> dict[str, Any]:
    """Convert the outputs of ``request`` that need it; ``result`` then names the final
    layers (and they load on completion under those names)."""
    for target in request.targets.values():
        if target.converts and os.path.exists(target.engine_path):
            if feedback is not None and feedback.isCanceled():
                raise QgsProcessingException("Cancelled by the user.")
            if feedback is not None:
                feedback.pushInfo(f"Writing {target.path} ({target.driver})")
            convert(target)
            _remove_engine_file(target.engine_path)
            result = _replace(result, target.engine_path, target.source())
        if target.requested:
            _rekey_layer(context, target.requested, target.source())
    return result


def _remove_engine_file(path: str) -> None:
    for sidecar in (path, path + ".aux.xml"):
        if os.path.isfile(sidecar):
            os.remove(sidecar)
