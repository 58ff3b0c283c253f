"""Raster grids: size, transform and CRS of a raster, without its pixels.

* :class:`RasterInfo`: what is known about a raster file (or a grid to be written).
* :func:`make_info`: a :class:`RasterInfo` for a grid that exists only in memory.
* :func:`warped_grid`: the grid of a raster reprojected and/or resampled (GDAL's suggestion).
* :func:`to_crs`: a rasterio CRS from the forms users give; :func:`grid_text` for log lines.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, TypeAlias

from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.crs import CRS

from engine.errors import CRSError

PathLike: TypeAlias = "str | os.PathLike[str]"
CRSLike: TypeAlias = "CRS | str | int | None"


@dataclasses.dataclass(frozen=True)
class RasterInfo:
    """What is known about a raster without reading its pixels."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    res: tuple[float, float]
    band_descriptions: tuple[str | None, ...] = ()

    @property
    def pixel_size(self) -> float:
        """Pixel width in CRS units (equal to the height once
        :func:`engine.io.checks.check_projected` passed)."""
        return float(self.res[0])

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in squared CRS units (``|a * e - b * d|`` of the transform)."""
        t = self.transform
        return float(abs(t.a * t.e - t.b * t.d))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def bounds(self) -> BoundingBox:
        """``(left, bottom, right, top)`` in CRS units."""
        t = self.transform
        w, h = self.width, self.height
        xs = [t.c, t.c + t.a * w, t.c + t.b * h, t.c + t.a * w + t.b * h]
        ys = [t.f, t.f + t.d * w, t.f + t.e * h, t.f + t.d * w + t.e * h]
        return BoundingBox(min(xs), min(ys), max(xs), max(ys))

    def with_crs(self, crs: CRSLike) -> RasterInfo:
        """Copy with ``crs`` set (an explicit CRS for files that carry none)."""
        return dataclasses.replace(self, crs=to_crs(crs))

    def same_grid(self, other: RasterInfo) -> bool:
        """True when both rasters share CRS, size and transform (no resampling needed)."""
        return (
            self.shape == other.shape
            and self.transform.almost_equals(
                other.transform, precision=1e-9 * max(1.0, self.pixel_size)
            )
            and _same_crs(self.crs, other.crs)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for manifests and results)."""
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtype": self.dtype,
            "crs": self.crs.to_string() if self.crs else None,
            "transform": list(self.transform)[:6],
            "nodata": None if self.nodata is None or math.isnan(self.nodata) else self.nodata,
            "pixel_size": self.pixel_size,
            "bounds": list(self.bounds),
        }


def to_crs(crs: CRSLike) -> CRS | None:
    """A rasterio CRS from ``"EPSG:32618"``, ``32618``, WKT/PROJ text or a CRS; None stays None."""
    if crs is None or isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_epsg(crs) if isinstance(crs, int) else CRS.from_user_input(crs)
    except Exception as exc:
        raise CRSError(
            f"{crs!r} is not a coordinate reference system GDAL knows ({exc}).",
            "Give it as 'EPSG:<code>' (e.g. EPSG:32618), a WKT string or a PROJ string.",
        ) from None


def _same_crs(a: CRS | None, b: CRS | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)


def make_info(
    width: int,
    height: int,
    transform: Affine,
    crs: CRSLike,
    count: int = 1,
    dtype: str = "float32",
    nodata: float | None = None,
    path: PathLike = "<memory>",
) -> RasterInfo:
    """A :class:`RasterInfo` for a grid that does not exist as a file yet (synthetic outputs)."""
    return RasterInfo(
        path=Path(path),
        width=int(width),
        height=int(height),
        count=int(count),
        dtype=dtype,
        crs=to_crs(crs),
        transform=transform,
        nodata=nodata,
        res=(abs(float(transform.a)), abs(float(transform.e))),
    )


def warped_grid(info: RasterInfo, crs: CRS | None, resolution: float | None) -> RasterInfo:
    """The grid of ``info`` reprojected to ``crs`` with pixels of ``resolution`` CRS units.

    GDAL suggests the transform and size (``calculate_default_transform``); without a
    ``resolution`` its suggested pixel is made square (the larger of its two sides). The result
    keeps ``info.path``.
    """
    from rasterio.warp import calculate_default_transform

    transform, width, height = calculate_default_transform(
        info.crs, crs, info.width, info.height, *info.bounds, resolution=resolution
    )
    if resolution is None:
        resolution = float(max(abs(transform.a), abs(transform.e)))
        transform, width, height = calculate_default_transform(
            info.crs, crs, info.width, info.height, *info.bounds, resolution=resolution
        )
    return make_info(width, height, transform, crs, path=info.path)


def grid_text(info: RasterInfo) -> str:
    """``'1000 x 800 px of 0.5 m, EPSG:32618'`` (for log lines)."""
    crs = "no CRS"
    if info.crs is not None:
        epsg = info.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else (info.crs.to_dict().get("proj") or "custom CRS")
    return f"{info.width} x {info.height} px of {info.pixel_size:g} m, {crs}"
