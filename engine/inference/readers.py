"""Open a DSM for streamed inference: input checks and on-the-fly resampling.

:func:`check_dsm` validates CRS, band count and pixel size before anything is computed (so a
bad input never leaves an output). :func:`open_dsm` returns a reader with
``read_window(row_off, col_off, height, width)``: the plain
:class:`~engine.io.raster.RasterReader`, or :class:`ResampledReader`, which wraps the already
opened dataset in a rasterio ``WarpedVRT`` at the model's pixel size (bilinear), so resampling
streams too. Outputs are then on the resampled grid (same CRS and origin, model pixel size).
:class:`ThreadReaders` gives each reading thread its own reader (several reader threads).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from affine import Affine
from numpy.typing import NDArray

from engine.errors import GridError, InputError
from engine.io.checks import check_band, check_projected
from engine.io.grid import RasterInfo, make_info
from engine.io.raster import RasterReader, read_info, warp_source_nodata


class WindowReader(Protocol):
    """What the streaming code needs from a raster."""

    info: RasterInfo

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int, band: int | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]: ...

    def close(self) -> None: ...


MIN_SIZE_PX = 16
"""Smallest DSM side (pixels) that ``infer`` and ``classical`` accept. Both judge each pixel's
height against the lowest surface around it (the normalisation's percentile over 32-64 m
blocks, the classical method's 30 m window), and the default model's coarsest level works on
16 x 16 px cells (depth 4): below 16 px no pixel has any surroundings, and the masks say
nothing (a 3 x 3 px DSM used to be processed without a word)."""


def check_size(info: RasterInfo, path: Path) -> None:
    """:class:`InputError` when the raster is smaller than :data:`MIN_SIZE_PX` on a side."""
    if min(info.width, info.height) < MIN_SIZE_PX:
        raise InputError(
            f"The DSM {path.name} is {info.width} x {info.height} pixels; gap maps need at least "
            f"{MIN_SIZE_PX} x {MIN_SIZE_PX} (each height is judged against the lowest surface "
            "around it, over tens of metres).",
            "Give a larger DSM (the whole area around the gaps of interest).",
        )


def check_dsm(
    path: Path,
    model_pixel: float | None,
    tolerance: float,
    resample: bool,
    band: int | None = None,
) -> tuple[RasterInfo, RasterInfo | None]:
    """``(info, resampled grid or None)``; raises CRSError / InputError / GridError.

    ``band``: the height band of a multi-band DSM (None: the DSM must have one band)."""
    info = read_info(path, "DSM")
    check_projected(info, "DSM")
    check_band(info, band, "DSM")
    check_size(info, path)
    if model_pixel is None or model_pixel <= 0:
        return info, None
    px = info.pixel_size
    if abs(px - model_pixel) <= tolerance * model_pixel:
        return info, None
    if not resample:
        raise GridError(
            f"The DSM {path.name} has {px:g} m pixels but the model was trained on "
            f"{model_pixel:g} m "
            f"pixels (difference beyond the {tolerance:.0%} tolerance).",
            f"Set 'resample' to true to resample it on the fly, or resample it to "
            f"{model_pixel:g} m "
            f"yourself (gdalwarp -tr {model_pixel:g} {model_pixel:g} -r bilinear in.tif out.tif).",
        )
    scale = model_pixel / px
    width, height = max(1, round(info.width / scale)), max(1, round(info.height / scale))
    t = info.transform
    transform = Affine(
        math.copysign(model_pixel, t.a), 0.0, t.c, 0.0, math.copysign(model_pixel, t.e), t.f
    )
    grid = make_info(width, height, transform, info.crs, nodata=info.nodata, path=path)
    check_size(grid, path)
    return info, grid


class ResampledReader:
    """Boundless, float32 window reads of a DSM resampled onto ``grid`` (WarpedVRT, bilinear)."""

    def __init__(self, path: Path, grid: RasterInfo, band: int = 1) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self._base = RasterReader(path, "DSM", band=band)
        self.info = grid
        self._vrt: Any = WarpedVRT(
            self._base.dataset,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.bilinear,
            src_nodata=warp_source_nodata(self._base.dataset),
            nodata=np.nan,
            dtype="float32",
        )

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int, band: int | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Like :meth:`RasterReader.read_window`, on the resampled grid."""
        from rasterio.windows import Window

        values = np.full((height, width), np.nan, dtype=np.float32)
        r0, c0 = max(row_off, 0), max(col_off, 0)
        r1, c1 = min(row_off + height, self.info.height), min(col_off + width, self.info.width)
        if r1 > r0 and c1 > c0:
            data = self._vrt.read(
                band or self._base.band, window=Window(c0, r0, c1 - c0, r1 - r0)
            ).astype(np.float32)
            values[r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off] = data
        valid = np.isfinite(values)
        return np.where(valid, values, np.nan).astype(np.float32), valid

    def close(self) -> None:
        """Close the VRT and the file."""
        self._vrt.close()
        self._base.close()


def open_dsm(path: Path, grid: RasterInfo | None, band: int | None = None) -> WindowReader:
    """A window reader of the DSM's ``band`` (default 1), resampled onto ``grid`` when given."""
    band = band or 1
    if grid is not None:
        return ResampledReader(path, grid, band)
    return RasterReader(path, "DSM", band=band)


class ThreadReaders:
    """A window reader for several threads: each thread reads through its own opened copy of
    the DSM (a GDAL dataset must never be used by two threads at once)."""

    def __init__(self, path: Path, grid: RasterInfo | None, band: int | None = None) -> None:
        self._path, self._grid, self._band = path, grid, band
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[WindowReader] = []

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Like :meth:`RasterReader.read_window`, through this thread's reader."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = open_dsm(self._path, self._grid, self._band)
            self._local.reader = reader
            with self._lock:
                self._opened.append(reader)
        window: tuple[NDArray[np.float32], NDArray[np.bool_]] = reader.read_window(
            row_off, col_off, height, width
        )
        return window

    def close(self) -> None:
        """Close every thread's reader (once no thread reads any more)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for reader in opened:
            reader.close()
