"""Tile plans over a raster grid (pixel offsets), and cutting padded tiles out of arrays.

A plan covers the raster with square tiles of ``tile_size`` pixels that overlap by ``overlap``
pixels. A raster smaller than one tile gets one tile at (0, 0), padded past the edge. When the
size is not a multiple of the stride the last tile is either moved back to end exactly at the
edge (``edge="align"``, more overlap, no padding) or placed on the stride and padded
(``edge="pad"``). Padding counts as nodata. Tiles with more than ``max_nodata_fraction`` nodata
are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from engine.errors import InputError, NoDataError

Edge = Literal["align", "pad"]
G = TypeVar("G", bound=np.generic)


@dataclass(frozen=True)
class Tile:
    """A square window of ``size`` pixels at ``row, col`` (may extend past the raster)."""

    row: int
    col: int
    size: int
    nodata_fraction: float = 0.0

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """``(row0, col0, row1, col1)`` pixel extent, end exclusive."""
        return (self.row, self.col, self.row + self.size, self.col + self.size)

    def overlaps(self, other: Tile) -> bool:
        """True when the two tiles share at least one pixel."""
        return (
            self.row < other.row + other.size
            and other.row < self.row + self.size
            and self.col < other.col + other.size
            and other.col < self.col + self.size
        )


def tile_offsets(length: int, tile_size: int, overlap: int = 0, edge: Edge = "align") -> list[int]:
    """Start offsets along one axis of ``length`` pixels."""
    if tile_size <= 0 or not 0 <= overlap < tile_size:
        raise InputError(
            f"Tile size {tile_size} with overlap {overlap} is not usable.",
            "Use a tile size > 0 and an overlap between 0 and tile size - 1.",
        )
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    offsets = list(range(0, length - tile_size + 1, stride))
    if offsets[-1] + tile_size < length:
        offsets.append(length - tile_size if edge == "align" else offsets[-1] + stride)
    return offsets


def _window_counts(valid: NDArray[np.bool_], tiles: list[tuple[int, int]], size: int) -> list[int]:
    """Valid-pixel count of each ``size`` window (clipped to the raster) via an integral image."""
    h, w = valid.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = valid.cumsum(0).cumsum(1)
    out = []
    for r, c in tiles:
        r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + size, h), min(c + size, w)
        out.append(int(integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]))
    return out


def plan_tiles(
    height: int,
    width: int,
    tile_size: int,
    overlap: int = 0,
    valid: NDArray[np.bool_] | None = None,
    max_nodata_fraction: float = 0.5,
    edge: Edge = "align",
    what: str = "raster",
) -> list[Tile]:
    """Tiles over a ``height x width`` grid, row-major; drops tiles with too much nodata.

    Raises :class:`NoDataError` when ``valid`` has no valid pixel or every tile is dropped.
    """
    rows = tile_offsets(height, tile_size, overlap, edge)
    cols = tile_offsets(width, tile_size, overlap, edge)
    offsets = [(r, c) for r in rows for c in cols]
    if valid is None:
        valid = np.ones((height, width), dtype=bool)
    if valid.shape != (height, width):
        raise ValueError(f"valid mask {valid.shape} does not match the grid {(height, width)}.")
    if not valid.any():
        raise NoDataError(
            f"The {what} has no valid pixel (all nodata or NaN).",
            "Check the nodata value of the input rasters and that they overlap each other.",
        )
    area = tile_size * tile_size
    counts = _window_counts(valid, offsets, tile_size)
    tiles = [
        Tile(r, c, tile_size, 1.0 - n / area) for (r, c), n in zip(offsets, counts, strict=True)
    ]
    kept = [
        t for t in tiles if t.nodata_fraction <= max_nodata_fraction and t.nodata_fraction < 1.0
    ]
    if not kept:
        best = min(t.nodata_fraction for t in tiles)
        raise NoDataError(
            f"Every tile of the {what} has more than {max_nodata_fraction:.0%} nodata "
            f"(the best has {best:.0%}).",
            "Raise max_nodata_fraction, use a smaller tile size, or check the nodata value.",
        )
    return kept


def cut(array: NDArray[G], row: int, col: int, size: int, fill: float | int) -> NDArray[G]:
    """``array[..., row:row+size, col:col+size]`` padded with ``fill`` where outside."""
    h, w = array.shape[-2:]
    out = np.full((*array.shape[:-2], size, size), fill, dtype=array.dtype)
    r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + size, h), min(col + size, w)
    if r1 > r0 and c1 > c0:
        out[..., r0 - row : r1 - row, c0 - col : c1 - col] = array[..., r0:r1, c0:c1]
    return out
