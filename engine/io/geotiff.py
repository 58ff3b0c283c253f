"""Writing GeoTIFFs: tiled, compressed, on the grid of a :class:`~engine.io.grid.RasterInfo`.

* :class:`RasterWriter`: write window by window (streamed outputs), atomically.
* :func:`write_raster`: write a whole array at once.
* :func:`default_compression`: zstd when this GDAL build has it, else deflate.

Files are written under a temporary name and renamed when complete
(:func:`engine.io.files.atomic_path`); GDAL's error state is checked on every write and on
close (:class:`engine.io.gdal_errors.WriteGuard`), and the closed file is opened again to check
its shape.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import DTypeLike, NDArray
from rasterio.windows import Window

from engine.errors import GridError, InputError
from engine.io.files import atomic_path
from engine.io.gdal_errors import WriteGuard
from engine.io.grid import CRSLike, PathLike, RasterInfo, to_crs

COMPRESSION_LEVELS = {"zstd": ("zstd_level", 1), "deflate": ("zlevel", 1)}
"""Fast compression levels (GDAL's defaults are zstd 9, deflate 6). Measured on 1024² px:
zstd 1 wrote 5 uint8 mask bands in 0.020 s vs 0.098 s at level 9 (file 25 % larger), and a
float32 DSM in 0.025 s vs 0.101 s (6 % larger). Outputs are written while the model computes,
on the same cores, so write speed matters more than size."""


@functools.lru_cache(maxsize=1)
def default_compression() -> str:
    """``"zstd"`` when this GDAL build has it, else ``"deflate"``."""
    from rasterio.io import MemoryFile

    try:
        with (
            rasterio.Env(),
            MemoryFile() as mem,
            mem.open(
                driver="GTiff",
                width=16,
                height=16,
                count=1,
                dtype="uint8",
                compress="zstd",
                transform=Affine(1, 0, 100, 0, -1, 100),
            ) as ds,
        ):
            ds.write(np.zeros((1, 16, 16), np.uint8))
        return "zstd"
    except Exception:
        return "deflate"


class RasterWriter:
    """Write a tiled, compressed GeoTIFF on the grid of ``like``, window by window, atomically.

    The file is written under a temporary name next to ``path`` and renamed when the ``with``
    block ends without error; on any exception (including ``Cancelled``) it is deleted.
    """

    def __init__(
        self,
        path: PathLike,
        like: RasterInfo,
        count: int = 1,
        dtype: DTypeLike = "float32",
        nodata: float | None = None,
        band_descriptions: list[str] | tuple[str, ...] | None = None,
        compress: str | None = None,
        tile: int = 256,
        crs: CRSLike = None,
    ) -> None:
        self.path = Path(path)
        self.like = like
        self.count = int(count)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.band_descriptions = list(band_descriptions or [])
        if self.band_descriptions and len(self.band_descriptions) != self.count:
            raise InputError(
                f"{len(self.band_descriptions)} band descriptions given for {self.count} bands.",
                "Give one description per band.",
            )
        self.compress = compress or default_compression()
        self.tile = int(tile)
        self.crs = to_crs(crs) if crs is not None else like.crs
        self._stack: contextlib.ExitStack | None = None
        self._ds: Any = None
        self._guard = WriteGuard(self.path)

    def profile(self) -> dict[str, Any]:
        """The GDAL creation profile."""
        predictor = 3 if self.dtype.kind == "f" else (2 if self.dtype.itemsize > 1 else 1)
        prof: dict[str, Any] = {
            "driver": "GTiff",
            "width": self.like.width,
            "height": self.like.height,
            "count": self.count,
            "dtype": self.dtype.name,
            "crs": self.crs,
            "transform": self.like.transform,
            "nodata": self.nodata,
            "tiled": True,
            "blockxsize": self.tile,
            "blockysize": self.tile,
            "compress": self.compress,
            "predictor": predictor,
            "BIGTIFF": "IF_SAFER",
        }
        level = COMPRESSION_LEVELS.get(self.compress.lower())
        if level is not None:
            prof[level[0]] = level[1]
        if self.count > 1:
            prof["interleave"] = "band"
        return prof

    def __enter__(self) -> RasterWriter:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(rasterio.Env())  # GDAL's failures logged, for self._guard
            tmp = stack.enter_context(atomic_path(self.path, sidecars=(".aux.xml",)))
            self._guard = WriteGuard(tmp)
            with self._guard():
                self._ds = rasterio.open(tmp, "w", **self.profile())
                for i, desc in enumerate(self.band_descriptions, start=1):
                    self._ds.set_band_description(i, desc)
        except BaseException:
            if self._ds is not None:
                self._ds.close()
                self._ds = None
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        ds, self._ds = self._ds, None
        if stack is None:
            return
        try:
            with self._guard():
                ds.close()
            if exc_type is None:
                self._check_written(ds.name)
        except BaseException as close_exc:
            if exc_type is None:  # a failed close on success: delete the partial file, then raise
                stack.__exit__(type(close_exc), close_exc, close_exc.__traceback__)
                raise
        stack.__exit__(exc_type, exc, tb)

    def _check_written(self, tmp: str) -> None:
        """Open the closed file again: it must be a readable raster of the expected shape."""
        with self._guard(), rasterio.open(tmp) as ds:
            shape = (ds.count, ds.height, ds.width)
        if shape != (self.count, self.like.height, self.like.width):
            raise self._guard.failure(f"the file written has shape {shape}")

    def write_window(self, array: NDArray[Any], row_off: int, col_off: int) -> None:
        """Write ``array`` (``[count, h, w]`` or ``[h, w]``), top-left at ``row_off, col_off``.

        Parts outside the raster (padded windows) are dropped.
        """
        if self._ds is None:
            raise RuntimeError("RasterWriter.write_window called outside its 'with' block.")
        arr = np.asarray(array)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[0] != self.count:
            raise ValueError(
                f"write_window expects [{self.count}, h, w] or [h, w], got {arr.shape}."
            )
        _, h, w = arr.shape
        r0, c0 = max(row_off, 0), max(col_off, 0)
        r1, c1 = min(row_off + h, self.like.height), min(col_off + w, self.like.width)
        if r1 <= r0 or c1 <= c0:
            return
        part = arr[:, r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off].astype(
            self.dtype, copy=False
        )
        with self._guard():
            self._ds.write(part, window=Window(c0, r0, c1 - c0, r1 - r0))


def write_raster(
    path: PathLike,
    array: NDArray[Any],
    like: RasterInfo,
    nodata: float | None = None,
    band_descriptions: list[str] | tuple[str, ...] | None = None,
    dtype: DTypeLike | None = None,
    compress: str | None = None,
    crs: CRSLike = None,
) -> Path:
    """Write a whole ``[h, w]`` or ``[count, h, w]`` array on the grid of ``like``."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[1:] != like.shape:
        raise GridError(
            f"Array of shape {arr.shape[1:]} does not match the raster grid {like.shape}.",
            "Internal error: write an array of the reference raster's size.",
        )
    with RasterWriter(
        path,
        like,
        count=arr.shape[0],
        dtype=dtype or arr.dtype,
        nodata=nodata,
        band_descriptions=band_descriptions,
        compress=compress,
        crs=crs,
    ) as writer:
        writer.write_window(arr, 0, 0)
    return Path(path)
