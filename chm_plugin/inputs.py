"""Turn Processing raster inputs into plain GeoTIFF paths the engine can open."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRasterFileWriter,
    QgsRasterLayer,
    QgsRasterPipe,
)

GEOTIFF_SUFFIXES = (".tif", ".tiff")


def plain_geotiff(layer: QgsRasterLayer) -> str | None:
    """The layer's file path when it is a plain GeoTIFF file read by GDAL, else None."""
    if layer.providerType() != "gdal":
        return None
    source = layer.source()
    if "|" in source or not source.lower().endswith(GEOTIFF_SUFFIXES):
        return None
    return source if os.path.isfile(source) else None


def export_geotiff(
    layer: QgsRasterLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
) -> str:
    """Write ``layer`` (memory, WMS, VRT, other formats...) to a temporary GeoTIFF."""
    name = "".join(c if c.isalnum() else "_" for c in layer.name())[:40] or "raster"
    path = os.path.join(QgsProcessingUtils.tempFolder(), f"{name}-{uuid.uuid4().hex[:8]}.tif")
    provider = layer.dataProvider()
    pipe = QgsRasterPipe()
    if not pipe.set(provider.clone()):
        raise QgsProcessingException(f"Cannot read raster layer '{layer.name()}'.")
    writer = QgsRasterFileWriter(path)
    writer.setOutputFormat("GTiff")
    writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
    error = writer.writeRaster(
        pipe,
        provider.xSize(),
        provider.ySize(),
        provider.extent(),
        layer.crs(),
        context.transformContext(),
    )
    if error != QgsRasterFileWriter.NoError:
        raise QgsProcessingException(
            f"Cannot export raster layer '{layer.name()}' to a temporary GeoTIFF (error {error}). "
            "Save it as a GeoTIFF file (Export > Save As...) and use that file."
        )
    if feedback is not None:
        feedback.pushInfo(f"Exported '{layer.name()}' to the temporary GeoTIFF {path}")
    return path


def raster_path(
    layer: QgsRasterLayer | None,
    what: str,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback | None,
    projected: bool = True,
) -> str:
    """A GeoTIFF path for ``layer``; checks that it is valid and (optionally) projected."""
    if layer is None or not layer.isValid():
        raise QgsProcessingException(f"The {what} is not a valid raster layer.")
    crs = layer.crs()
    if projected and crs.isValid() and crs.isGeographic():
        raise QgsProcessingException(
            f"The {what} '{layer.name()}' uses the geographic CRS "
            f"{crs.authid() or crs.description()} "
            "(degrees), but gap sizes and heights need metres. Reproject it to a projected CRS "
            "(e.g. the local UTM zone) with Raster > Projections > Warp (Reproject) first."
        )
    return plain_geotiff(layer) or export_geotiff(layer, context, feedback)


def file_path(value: str, what: str, suffixes: tuple[str, ...] = ()) -> str:
    """Check that an input file exists (and has one of ``suffixes``)."""
    if not value:
        raise QgsProcessingException(f"No {what} was given.")
    path = Path(value)
    if not path.exists():
        raise QgsProcessingException(f"The {what} {value} does not exist. Check the path.")
    if suffixes and path.suffix.lower() not in suffixes:
        raise QgsProcessingException(
            f"The {what} {value} should be a {' or '.join(suffixes)} file."
        )
    return str(path)
