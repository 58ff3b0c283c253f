"""Vector outputs: gap polygons in a GeoPackage (GDAL/OGR).

:func:`polygonise_masks` turns each band of a gap-mask GeoTIFF (1 = gap, 0 = canopy, 255 =
nodata) into polygons with ``gdal.Polygonize`` (8-connected, like the label rule), which reads
the raster line by line, so memory does not grow with the raster size. A virtual raster (VRT
lookup table) maps gap to 1 and everything else to 0 and serves as its own mask, so only gap
polygons are produced. One layer ``gaps`` holds every threshold; fields ``threshold_m``,
``area_m2`` and ``perimeter_m`` (exterior and hole rings) are in CRS units (metres). The file
is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from engine.errors import InputError, require
from engine.io.files import atomic_path

LAYER = "gaps"
FIELDS = ("threshold_m", "area_m2", "perimeter_m")


def _lut_vrt(
    path: Path, band: int, width: int, height: int, transform: Sequence[float], wkt: str
) -> str:
    gt = ",".join(repr(float(v)) for v in transform)
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(wkt)}</SRS><GeoTransform>{gt}</GeoTransform>"
        '<VRTRasterBand dataType="Byte" band="1"><ComplexSource>'
        f'<SourceFilename relativeToVRT="0">{escape(str(path))}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand><LUT>0:0,1:1,2:0,255:0</LUT>"
        "</ComplexSource></VRTRasterBand></VRTDataset>"
    )


def polygonise_masks(
    mask_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    thresholds: Sequence[float],
    progress: Callable[[float], None] | None = None,
) -> dict[str, int]:
    """Write gap polygons of every mask band to GeoPackage ``output``; return counts per threshold.

    ``progress(fraction)`` is called between bands and may raise ``Cancelled`` (the partial file
    is then removed).
    """
    gdal: Any = require(
        "osgeo.gdal", "Writing gap polygons", "GDAL (Debian: apt install python3-gdal)"
    )
    ogr: Any = require("osgeo.ogr", "Writing gap polygons")
    gdal.UseExceptions()
    ogr.UseExceptions()
    src = gdal.Open(str(mask_path))
    if src is None or src.RasterCount != len(thresholds):
        raise InputError(f"{mask_path} is not a gap mask with {len(thresholds)} bands.")
    transform, wkt = src.GetGeoTransform(), src.GetProjection()
    width, height = src.RasterXSize, src.RasterYSize
    srs = src.GetSpatialRef()
    src = None
    counts: dict[str, int] = {}
    with atomic_path(output) as tmp:
        driver = ogr.GetDriverByName("GPKG")
        ds = driver.CreateDataSource(str(tmp))
        try:
            layer = ds.CreateLayer(LAYER, srs, ogr.wkbPolygon)
            for name in FIELDS:
                layer.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
            done = 0
            for k, t in enumerate(thresholds):
                vrt = gdal.Open(
                    _lut_vrt(Path(mask_path).resolve(), k + 1, width, height, transform, wkt)
                )
                band = vrt.GetRasterBand(1)
                gdal.Polygonize(band, band, layer, -1, ["8CONNECTED=8"])
                vrt = None
                counts[f"{t:g}"] = _fill_attributes(layer, done, float(t))
                done += counts[f"{t:g}"]
                if progress is not None:
                    progress((k + 1) / len(thresholds))
        finally:
            ds = None
    return counts


def _fill_attributes(lyr: Any, after_fid: int, threshold: float) -> int:
    """Set threshold, area and perimeter on the features added by the last Polygonize."""
    lyr.SetAttributeFilter(f"fid > {after_fid}")
    lyr.ResetReading()
    lyr.StartTransaction()
    n = 0
    feature = lyr.GetNextFeature()
    while feature is not None:
        geom = feature.GetGeometryRef()
        feature.SetField("threshold_m", threshold)
        feature.SetField("area_m2", geom.GetArea())
        feature.SetField("perimeter_m", geom.Boundary().Length())
        lyr.SetFeature(feature)
        n += 1
        feature = lyr.GetNextFeature()
    lyr.CommitTransaction()
    lyr.SetAttributeFilter(None)
    return n


def read_polygons(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Attributes of every polygon of a gap GeoPackage (tests, small files)."""
    ogr: Any = require("osgeo.ogr", "Reading gap polygons")
    ogr.UseExceptions()
    ds = ogr.Open(str(path))
    if ds is None:
        raise InputError(f"{path} cannot be opened as a GeoPackage.")
    layer = ds.GetLayerByName(LAYER)
    out = [
        {
            **{name: f.GetField(name) for name in FIELDS},
            "geometry_area": f.GetGeometryRef().GetArea(),
        }
        for f in layer
    ]
    ds = None
    return out
