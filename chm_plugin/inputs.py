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


def band_geotiff(layer: QgsRasterLayer, band: int, feedback: QgsProcessingFeedback | None) -> str:
    """Band ``band`` of ``layer`` as a temporary one-band GeoTIFF (GDAL, nodata kept)."""
    from osgeo import gdal

    gdal.UseExceptions()
    name = "".join(c if c.isalnum() else "_" for c in layer.name())[:40] or "raster"
    path = os.path.join(
        QgsProcessingUtils.tempFolder(), f"{name}-band{band}-{uuid.uuid4().hex[:8]}.tif"
    )
    try:
        gdal.Translate(
            path,
            layer.source(),
            bandList=[band],
            creationOptions=["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"],
        )
    except RuntimeError as exc:
        raise QgsProcessingException(
            f"Cannot read band {band} of '{layer.name()}' ({exc})."
        ) from exc
    if feedback is not None:
        feedback.pushInfo(f"Band {band} of '{layer.name()}' copied to the temporary GeoTIFF {path}")
    return path


def raster_path(
    layer: QgsRasterLayer | None,
    what: str,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback | None,
    projected: bool = True,
    band: int | None = None,
) -> str:
    """A GeoTIFF path for ``layer``; checks that it is valid and (optionally) projected.

    ``band`` picks one band of a multi-band layer (copied to a temporary GeoTIFF); None keeps
    the layer as it is (the engine then checks its band count)."""
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
    if band is not None and not 1 <= band <= layer.bandCount():
        raise QgsProcessingException(
            f"The {what} '{layer.name()}' has {layer.bandCount()} band(s); band {band} does not "
            "exist."
        )
    path = plain_geotiff(layer) or export_geotiff(layer, context, feedback)
    if band is not None and layer.bandCount() > 1:
        return band_geotiff(QgsRasterLayer(path, layer.name(), "gdal"), band, feedback)
    return path


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
