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

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from engine.errors import InputError, require
from engine.io.files import atomic_path, output_failure

LAYER = "gaps"
FIELDS = ("threshold_m", "area_m2", "perimeter_m")
CHECK_EVERY = 500
"""Polygons given their attributes between two progress (and Cancel) checks; GDAL's
Polygonize itself reports progress (and is stopped on Cancel) once per raster row."""


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

    ``progress(fraction)`` is called for every raster row polygonised and every
    :data:`CHECK_EVERY` polygons; it may raise ``Cancelled``, which stops GDAL at once (the
    partial file is then removed). A failed write (full disk...) raises
    :class:`~engine.errors.OutputError` and leaves nothing at ``output``.
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
    grid = (width, height, transform, wkt)
    stop = _Stop(progress)
    with atomic_path(output) as tmp:
        try:
            counts = _write_polygons(
                gdal, ogr, tmp, Path(mask_path).resolve(), grid, srs, thresholds, stop
            )
        except RuntimeError as exc:  # GDAL/OGR errors (exceptions are on)
            if stop.error is not None:
                raise stop.error from None
            raise output_failure(tmp, exc) from exc
        if stop.error is not None:
            raise stop.error
    return counts


class _Stop:
    """GDAL progress callback: forwards progress, and stops GDAL when it raises (Cancel)."""

    def __init__(self, progress: Callable[[float], None] | None) -> None:
        self.progress = progress
        self.error: BaseException | None = None
        self.start, self.span, self.last = 0.0, 1.0, 0.0

    def __call__(self, complete: float, message: Any = None, data: Any = None) -> int:
        """GDAL's callback signature; returning 0 makes GDAL stop."""
        if self.error is not None:
            return 0
        self.last = max(self.last, self.start + self.span * min(max(float(complete), 0.0), 1.0))
        try:
            if self.progress is not None:
                self.progress(self.last)
        except BaseException as exc:  # Cancelled, KeyboardInterrupt
            self.error = exc
            return 0
        return 1

    def check(self, complete: float = 0.0) -> None:
        """Report progress from Python code; raises the stored or a new cancel."""
        if self(complete) == 0 and self.error is not None:
            raise self.error


def _write_polygons(
    gdal: Any,
    ogr: Any,
    tmp: Path,
    mask: Path,
    grid: tuple[int, int, Sequence[float], str],
    srs: Any,
    thresholds: Sequence[float],
    stop: _Stop,
) -> dict[str, int]:
    """Polygonise each band into layer ``gaps`` of a new GeoPackage ``tmp``; counts per band."""
    counts: dict[str, int] = {}
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
    try:
        layer = ds.CreateLayer(LAYER, srs, ogr.wkbPolygon)
        for name in FIELDS:
            layer.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
        done, n = 0, len(thresholds)
        for k, t in enumerate(thresholds):
            stop.start, stop.span = k / n, 0.8 / n
            vrt = gdal.Open(_lut_vrt(mask, k + 1, *grid))
            band = vrt.GetRasterBand(1)
            gdal.Polygonize(band, band, layer, -1, ["8CONNECTED=8"], callback=stop)
            vrt = None
            stop.check()
            stop.start, stop.span = (k + 0.8) / n, 0.2 / n
            counts[f"{t:g}"] = _fill_attributes(layer, done, float(t), stop)
            done += counts[f"{t:g}"]
        ds.FlushCache()
    finally:
        with _quiet(gdal, ogr):
            ds = None
    _check_polygons(ogr, tmp, done)
    return counts


@contextlib.contextmanager
def _quiet(gdal: Any, ogr: Any) -> Iterator[None]:
    """OGR without exceptions or messages: for closing a data source (a destructor must not
    raise; errors were checked by FlushCache, and after a failure the file is deleted)."""
    was = ogr.GetUseExceptions()
    ogr.DontUseExceptions()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()
        if was:
            ogr.UseExceptions()


def _check_polygons(ogr: Any, path: Path, expected: int) -> None:
    """Open the closed GeoPackage again: it must hold the ``expected`` polygons."""
    ds = ogr.Open(str(path))
    found = ds.GetLayerByName(LAYER).GetFeatureCount() if ds is not None else -1
    ds = None
    if found != expected:
        raise RuntimeError(f"the GeoPackage holds {found} polygons instead of {expected}")


def _fill_attributes(lyr: Any, after_fid: int, threshold: float, stop: _Stop) -> int:
    """Set threshold, area and perimeter on the features added by the last Polygonize."""
    lyr.SetAttributeFilter(f"fid > {after_fid}")
    total = max(1, lyr.GetFeatureCount())
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
        if n % CHECK_EVERY == 0:
            stop.check(n / total)
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
