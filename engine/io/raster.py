"""Reading rasters (rasterio/GDAL): windows, whole bands, and bands aligned onto another grid.

Reading returns ``(values, valid)`` pairs: ``values`` is float32 with NaN wherever ``valid`` is
False; a pixel is invalid when it lies outside the raster (windows are *boundless*), equals the
nodata value, is masked by an internal mask, or is NaN/inf.

* :func:`read_info`: the :class:`~engine.io.grid.RasterInfo` of a raster file.
* :class:`RasterReader` / :func:`read_window` / :func:`read_array`: open once, read many
  (boundless) windows.
* :func:`read_aligned`: another raster resampled onto a reference grid (WarpedVRT).

Grids live in :mod:`engine.io.grid`, input checks in :mod:`engine.io.checks`, writing in
:mod:`engine.io.geotiff`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from engine.errors import CRSError, GridError, InputError
from engine.io.grid import CRSLike, PathLike, RasterInfo, grid_text

_log = logging.getLogger("engine")


def _info_from_dataset(ds: DatasetReader, path: Path) -> RasterInfo:
    nodata = ds.nodata
    return RasterInfo(
        path=path,
        width=int(ds.width),
        height=int(ds.height),
        count=int(ds.count),
        dtype=str(ds.dtypes[0]),
        crs=ds.crs if ds.crs else None,
        transform=ds.transform,
        nodata=None if nodata is None else float(nodata),
        res=(float(abs(ds.res[0])), float(abs(ds.res[1]))),
        band_descriptions=tuple(ds.descriptions),
    )


def _open(path: PathLike, what: str = "raster") -> DatasetReader:
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"The {what} file {p} does not exist.", "Check the path (and the working folder)."
        )
    if p.is_dir():
        raise InputError(
            f"The {what} path {p} is a folder, not a raster file.", "Give the path of a GeoTIFF."
        )
    try:
        return rasterio.open(p)
    except (RasterioError, RasterioIOError) as exc:
        raise InputError(
            f"The {what} file {p} cannot be read as a raster ({exc}).",
            "Give a GeoTIFF (or another GDAL raster); check the file is complete and not corrupt.",
        ) from None


def read_info(path: PathLike, what: str = "raster") -> RasterInfo:
    """Describe a raster file; :class:`InputError` if it is missing, corrupt or not a raster."""
    with _open(path, what) as ds:
        if ds.count < 1:
            raise InputError(
                f"The {what} file {path} has no raster band.", "Give a raster with heights."
            )
        return _info_from_dataset(ds, Path(path))


def _invalid_values(values: NDArray[Any], nodata: float | None) -> NDArray[np.bool_]:
    bad = ~np.isfinite(values)
    if nodata is None or math.isnan(nodata):
        return bad
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        if not (info.min <= nodata <= info.max and float(nodata).is_integer()):
            return bad  # a nodata value the band cannot hold marks nothing
    bad |= values == np.asarray(nodata).astype(values.dtype)
    return bad


class RasterReader:
    """Open a raster once and read many windows from it (streamed inference, tiling).

    Use as a context manager. ``crs`` assigns a CRS to files that carry none (ForestGapR);
    ``band`` is the band :meth:`read_window` reads when it is given none.
    """

    def __init__(
        self, path: PathLike, what: str = "raster", crs: CRSLike = None, band: int = 1
    ) -> None:
        self.path = Path(path)
        self.band = band
        self._ds = _open(self.path, what)
        info = _info_from_dataset(self._ds, self.path)
        self.info = info.with_crs(crs) if crs is not None else info
        flags = self._ds.mask_flag_enums
        self._use_mask = [
            (MaskFlags.per_dataset in f or MaskFlags.alpha in f) and MaskFlags.nodata not in f
            for f in flags
        ]

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._ds.close()

    @property
    def dataset(self) -> DatasetReader:
        """The underlying rasterio dataset."""
        return self._ds

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int, band: int | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Boundless window read: ``(float32 values with NaN where invalid, valid mask)``."""
        band = self.band if band is None else band
        if not 1 <= band <= self.info.count:
            raise InputError(
                f"{self.path.name} has no band {band} (it has {self.info.count}).",
                "Pick an existing band.",
            )
        values = np.full((height, width), np.nan, dtype=np.float32)
        valid = np.zeros((height, width), dtype=bool)
        r0, c0 = max(row_off, 0), max(col_off, 0)
        r1, c1 = min(row_off + height, self.info.height), min(col_off + width, self.info.width)
        if r1 <= r0 or c1 <= c0:
            return values, valid
        win = Window(c0, r0, c1 - c0, r1 - r0)
        try:
            data = self._ds.read(band, window=win)
            mask = self._ds.read_masks(band, window=win) > 0 if self._use_mask[band - 1] else None
        except (RasterioError, RasterioIOError) as exc:
            raise InputError(
                f"Reading {self.path} failed ({exc}).",
                "The file may be truncated or corrupt; re-export it.",
            ) from None
        ok = ~_invalid_values(data, self.info.nodata)
        if mask is not None:
            ok &= mask
        sl = np.s_[r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off]
        values[sl] = np.where(ok, data, np.nan)
        valid[sl] = ok
        return values, valid

    def read(self, band: int | None = None) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """The whole band as ``(values, valid)``."""
        return self.read_window(0, 0, self.info.height, self.info.width, band)


Source: TypeAlias = "PathLike | RasterReader"


def read_window(
    source: Source, row_off: int, col_off: int, height: int, width: int, band: int = 1
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Boundless window of ``source`` (a path or an open :class:`RasterReader`).

    Pixels outside the raster, nodata, NaN and inf are invalid (and NaN in the values).
    """
    if isinstance(source, RasterReader):
        return source.read_window(row_off, col_off, height, width, band)
    with RasterReader(source) as reader:
        return reader.read_window(row_off, col_off, height, width, band)


def read_array(
    source: Source, band: int = 1, crs: CRSLike = None
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The whole band of a raster as ``(values, valid)``."""
    if isinstance(source, RasterReader):
        return source.read(band)
    with RasterReader(source, crs=crs) as reader:
        return reader.read(band)


_RESAMPLING = {r.name: r for r in Resampling}


def resampling_method(name: str) -> Resampling:
    """A rasterio ``Resampling`` from its name (``nearest``, ``bilinear``, ``average``...)."""
    try:
        return _RESAMPLING[name]
    except KeyError:
        valid = "nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, min, max, med"
        raise InputError(f"Unknown resampling method {name!r}.", f"Use one of: {valid}.") from None


def read_aligned(
    path: PathLike,
    ref: RasterInfo,
    resampling: str = "bilinear",
    band: int = 1,
    crs: CRSLike = None,
    what: str = "raster",
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Read ``path`` resampled onto the grid of ``ref`` (CRS, transform, size).

    Same grid: a plain read. Otherwise both CRSs must be known (``crs`` overrides the file's own)
    or :class:`CRSError` is raised. Pixels of ``ref`` outside ``path`` are invalid.
    """
    with RasterReader(path, what=what, crs=crs) as reader:
        src = reader.info
        if _on_grid(src, ref):
            return reader.read(band)
        _require_crs(src, ref)
        _log.info(
            "Resampled the %s %s onto the grid of %s (%s): %s -> %s.",
            what,
            src.path.name,
            ref.path.name,
            resampling,
            grid_text(src),
            grid_text(ref),
        )
        data = _warped_band(reader, ref, resampling, band)
    valid = np.isfinite(data)
    if src.nodata is not None and not math.isnan(src.nodata):
        valid &= data != np.float32(src.nodata)
    data = np.where(valid, data, np.nan).astype(np.float32)
    return data, valid


def _on_grid(src: RasterInfo, ref: RasterInfo) -> bool:
    """True when ``src`` needs no resampling onto ``ref``: the same grid, or (both without a
    CRS) the same size and transform."""
    if src.same_grid(ref):
        return True
    return (
        src.crs is None
        and ref.crs is None
        and src.shape == ref.shape
        and src.transform == ref.transform
    )


def _require_crs(src: RasterInfo, ref: RasterInfo) -> None:
    """:class:`CRSError` when either raster lacks the CRS that resampling needs."""
    if src.crs is None or ref.crs is None:
        missing = src.path.name if src.crs is None else ref.path.name
        raise CRSError(
            f"Cannot align {src.path.name} onto the grid of {ref.path.name}: {missing} has no CRS.",
            "Assign the CRS of both rasters (QGIS 'Assign Projection' or "
            "'gdal_edit.py -a_srs EPSG:xxxx'), or give the 'crs' option.",
        )


def warp_source_nodata(ds: Any) -> float | None:
    """The ``src_nodata`` of a ``WarpedVRT`` over dataset ``ds``: its nodata value, else NaN
    for floating-point data (NaN marks nodata there), else none."""
    if ds.nodata is not None:
        return float(ds.nodata)
    return np.nan if np.dtype(ds.dtypes[0]).kind == "f" else None


def _warped_band(
    reader: RasterReader, ref: RasterInfo, resampling: str, band: int
) -> NDArray[np.float32]:
    """Band ``band`` of ``reader`` warped onto ``ref`` (float32, NaN outside and at nodata)."""
    ds, src = reader.dataset, reader.info
    src_nodata = warp_source_nodata(ds)
    try:
        with WarpedVRT(
            ds,
            src_crs=src.crs,
            crs=ref.crs,
            transform=ref.transform,
            width=ref.width,
            height=ref.height,
            resampling=resampling_method(resampling),
            src_nodata=src_nodata,
            nodata=np.nan,
            dtype="float32",
        ) as vrt:
            return vrt.read(band).astype(np.float32, copy=False)
    except (RasterioError, RasterioIOError) as exc:
        raise GridError(
            f"Cannot resample {src.path.name} onto the grid of {ref.path.name} ({exc}).",
            "Check both rasters' CRS and extent overlap; or warp it yourself with gdalwarp.",
        ) from None
