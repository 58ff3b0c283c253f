"""Input raster checks with fix-it hints: projected CRS in metres, north-up square pixels, bands.

Each check takes a :class:`~engine.io.grid.RasterInfo` and raises a
:class:`~engine.errors.CRSError`, :class:`~engine.errors.GridError` or
:class:`~engine.errors.InputError` whose hint names the GDAL command or QGIS tool that fixes it.
"""

from __future__ import annotations

import math

from engine.errors import CRSError, GridError, InputError
from engine.io.grid import RasterInfo

REPROJECT_HINT = (
    "Reproject it to a projected CRS in metres (e.g. the local UTM zone) with "
    "'gdalwarp -t_srs EPSG:326xx in.tif out.tif' or QGIS Raster > Projections > Warp (Reproject)."
)


def check_projected(info: RasterInfo, what: str = "DSM") -> None:
    """Require a projected CRS in metres and square, north-up (unrotated) pixels.

    Raises :class:`CRSError` (no CRS, geographic or non-metre CRS) or :class:`GridError`.
    """
    name = f"The {what} {info.path.name}"
    _check_crs_in_metres(info, name)
    t = info.transform
    if t.b != 0 or t.d != 0:
        raise GridError(
            f"{name} has a rotated or sheared geotransform ({tuple(t)[:6]}).",
            "Warp it to a north-up grid: 'gdalwarp -t_srs <same CRS> in.tif out.tif' or QGIS Warp.",
        )
    rx, ry = info.res
    if not math.isclose(rx, ry, rel_tol=1e-6):
        raise GridError(
            f"{name} has non-square pixels ({rx:g} x {ry:g}).",
            f"Resample it to square pixels, e.g. 'gdalwarp -tr {min(rx, ry):g} {min(rx, ry):g} "
            "in.tif out.tif' or QGIS Warp with an output resolution.",
        )


def _check_crs_in_metres(info: RasterInfo, name: str) -> None:
    """:class:`CRSError` unless ``info`` has a projected CRS whose unit is the metre."""
    if info.crs is None:
        raise CRSError(
            f"{name} has no coordinate reference system, so pixel sizes and gap areas are unknown.",
            "Assign its CRS (QGIS 'Assign Projection', 'gdal_edit.py -a_srs EPSG:xxxx file.tif', "
            "or the 'crs' option where the command offers it).",
        )
    if info.crs.is_geographic or not info.crs.is_projected:
        raise CRSError(
            f"{name} uses a geographic CRS ({info.crs.to_string()}): pixel sizes are in degrees, "
            "not metres.",
            REPROJECT_HINT,
        )
    try:
        unit, factor = info.crs.linear_units_factor
    except Exception:  # pragma: no cover - exotic CRS without units
        unit, factor = "unknown", float("nan")
    if not math.isclose(factor, 1.0, rel_tol=1e-9):
        raise CRSError(
            f"{name} has CRS units of '{unit}', not metres: heights and thresholds would disagree.",
            REPROJECT_HINT,
        )


def check_band_count(info: RasterInfo, expected: int = 1, what: str = "DSM") -> None:
    """:class:`InputError` unless the raster has exactly ``expected`` bands."""
    if info.count != expected:
        raise InputError(
            f"The {what} {info.path.name} has {info.count} bands; expected {expected}.",
            f"Extract the height band first (e.g. 'gdal_translate -b 1 in.tif out.tif' or QGIS "
            f"Rearrange bands) and give a {expected}-band raster.",
        )


def check_band(info: RasterInfo, band: int | None, what: str = "DSM") -> int:
    """The band to read: ``band`` when the raster has it; ``None`` needs a one-band raster."""
    if band is None:
        check_band_count(info, 1, what)
        return 1
    if not 1 <= band <= info.count:
        raise InputError(
            f"The {what} {info.path.name} has {info.count} band(s); band {band} does not exist.",
            f"Choose a band between 1 and {info.count}.",
        )
    return band
