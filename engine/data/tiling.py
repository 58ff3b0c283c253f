"""Square windows over a raster grid: the engine's one tiling module.

Two plans place windows of ``tile`` pixels along both axes, one origin every ``stride`` pixels;
what a window holds outside the raster comes from one of the edge rules below.

**Training tiles** (:func:`plan_tiles`, ``engine preprocess``): origins ``0, stride, ...`` with
``stride = tile - overlap`` (:func:`tile_offsets`). A raster smaller than one tile gets one tile
at (0, 0), padded past the edge. When the size is not a multiple of the stride the last tile is
either moved back to end exactly at the edge (``edge="align"``, more overlap, no padding) or
placed on the stride and padded (``edge="pad"``). Tiles with more than ``max_nodata_fraction``
nodata (padding counts as nodata) are dropped.

**Inference window plan** (:class:`TilePlan`, ``engine infer``): a tile of ``tile`` pixels (a
multiple of ``2**depth``, :func:`fit_tile`) is cut at origin ``k * stride - margin - ramp``
along each axis. Its 1-D weight profile is::

    0 (margin) | ramp up (ramp) | 1 (stride - ramp) | ramp down (ramp) | 0 (margin)

so ``stride = tile - 2 * margin - ramp``. The ramps are ``sin^2`` / ``cos^2`` halves: adjacent
tiles' ramps sum to 1 (up to float32 rounding), so the weights form a partition of unity over
the raster and the blended value is a weighted sum (divided by the summed weight all the same,
which also covers the last, partly covered rows).

* ``ramp = 0`` is **centre-crop** blending: each output pixel comes from exactly one tile,
  the one whose core (``stride`` pixels) holds it, and every tile throws away ``margin`` pixels of
  context on each side. The result equals a whole-image pass bit for bit only when the margin
  covers the model's receptive-field radius (tested with a 25 px window model:
  ``tests/inference/test_seams.py``). A U-Net's receptive field is wider than the default
  margin (radius 46 px at depth 3, 94 px at depth 4, against 16 and 32 px of margin); its far
  context weighs little, so crop is close, not exact: for the shipped model at 1024² px, 99.99 %
  of mask pixels agree and logits differ by up to 1.04 (2 % of their spread;
  ``bench/results.md``, ``seams``).
* ``ramp > 0`` is a cosine-ramp weighted blend: smooth where tiles disagree (shipped model:
  100 % of mask pixels agree, logits within 0.085).

Output is emitted by row band: band ``k`` covers rows ``[k * stride - ramp, (k + 1) * stride -
ramp)`` (clipped to the raster; the last band runs to the bottom). It is final once tile rows
``k - 1`` and ``k`` are done. Within a tile row, tiles are computed in **column chunks** of at
most :meth:`TilePlan.chunk_tiles` tiles (a bounded number of input pixels, whatever the raster
width); chunk ``[j0, j1)`` finalises the columns :meth:`TilePlan.cols` ``(j0, j1)``, defined
like the bands along the other axis, so a finished piece of output is the *cell*
``band(k) x cols(j0, j1)``.

**Edge rules.** :func:`cut` pads with a fill value (training: nodata, which the loss ignores).
:func:`reflect_index` mirrors the raster about its edge (numpy's ``"reflect"`` mode; inference,
so the model sees plausible context); the whole-image reference (:func:`whole_image_indices`)
pads the same way, so tiles and reference see identical input everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError, InputError, NoDataError

Edge = Literal["align", "pad"]
G = TypeVar("G", bound=np.generic)


def fit_tile(size: int, multiple: int) -> int:
    """``size`` rounded down to a multiple of ``multiple`` (``2**depth`` of a model), at least
    one ``multiple``."""
    return max(multiple, size // multiple * multiple)


# --- edge rules -------------------------------------------------------------------------------


def cut(array: NDArray[G], row: int, col: int, size: int, fill: float | int) -> NDArray[G]:
    """``array[..., row:row+size, col:col+size]`` padded with ``fill`` where outside."""
    h, w = array.shape[-2:]
    out = np.full((*array.shape[:-2], size, size), fill, dtype=array.dtype)
    r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + size, h), min(col + size, w)
    if r1 > r0 and c1 > c0:
        out[..., r0 - row : r1 - row, c0 - col : c1 - col] = array[..., r0:r1, c0:c1]
    return out


def reflect_index(index: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Map any pixel index onto ``[0, size)`` by mirror reflection without repeating the edge."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    m = np.mod(index, period)
    return np.where(m < size, m, period - m)


def whole_image_indices(size: int, lead: int, multiple: int) -> NDArray[np.int64]:
    """Source indices of a whole-image pass padded like the tiles: ``lead`` reflected pixels
    before the raster, then up to the next multiple of ``multiple`` (at least ``lead`` after)."""
    total = size + 2 * lead
    total = -(-total // multiple) * multiple
    return reflect_index(np.arange(-lead, total - lead, dtype=np.int64), size)


# --- training tiles ---------------------------------------------------------------------------
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


# --- inference window plan --------------------------------------------------------------------
def auto_margin(depth: int, tile: int) -> int:
    """Default context margin: ``2**(depth+1)`` pixels, at most a quarter of the tile.

    A U-Net of that depth sees farther (receptive-field radius 46 px at depth 3, 94 px at depth
    4), but most of its weight lies within the margin (99.7 % of the input gradient of a random
    depth-3 U-Net within 16 px; 93 % for the shipped depth-4 model within 32 px)."""
    return int(min(2 ** (depth + 1), tile // 4))


def ramp_profile(tile: int, margin: int, ramp: int) -> NDArray[np.float32]:
    """1-D weights of one tile: zeros, ``sin^2`` ramp up, ones, ``cos^2`` ramp down, zeros."""
    w = np.zeros(tile, dtype=np.float64)
    ones_start, ones_stop = margin + ramp, tile - margin - ramp
    w[ones_start:ones_stop] = 1.0
    if ramp > 0:
        up = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
        w[margin : margin + ramp] = up
        w[tile - margin - ramp : tile - margin] = up[::-1]
    return w.astype(np.float32)


@dataclass(frozen=True)
class TilePlan:
    """Where tiles go and how they blend for a raster of ``height`` x ``width`` pixels."""

    height: int
    width: int
    tile: int
    margin: int
    ramp: int = 0
    multiple: int = 1

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.tile % self.multiple:
            raise ConfigError(
                f"Tile size {self.tile} must be a positive multiple of {self.multiple} "
                "(2**depth of the model).",
                f"Use e.g. {fit_tile(self.tile, self.multiple)}.",
            )
        if self.margin < 0 or self.ramp < 0:
            raise ConfigError("Tile margin and ramp must not be negative.")
        if self.stride <= self.ramp or self.stride < 1:
            raise ConfigError(
                f"Tile size {self.tile} leaves no core with margin {self.margin} and ramp "
                f"{self.ramp} (core = tile - 2*margin - ramp = {self.stride}, must exceed the "
                "ramp).",
                "Use a larger tile size or a smaller margin/overlap.",
            )

    @property
    def stride(self) -> int:
        """Distance between tile origins (the core each tile contributes)."""
        return self.tile - 2 * self.margin - self.ramp

    @property
    def lead(self) -> int:
        """Pixels of a tile before the first output row/column it fully owns."""
        return self.margin + self.ramp

    @property
    def n_rows(self) -> int:
        """Number of tile rows (and output row bands)."""
        return math.ceil(self.height / self.stride)

    @property
    def n_cols(self) -> int:
        """Number of tiles per tile row."""
        return math.ceil(self.width / self.stride)

    @property
    def n_tiles(self) -> int:
        """Total number of tiles."""
        return self.n_rows * self.n_cols

    def row_origin(self, k: int) -> int:
        """First raster row of tile row ``k`` (negative at the top edge)."""
        return k * self.stride - self.lead

    def col_origin(self, j: int) -> int:
        """First raster column of tile column ``j``."""
        return j * self.stride - self.lead

    @cached_property
    def weights(self) -> NDArray[np.float32]:
        """1-D weights of a tile (rows and columns alike; 2-D weight = outer product)."""
        return ramp_profile(self.tile, self.margin, self.ramp)

    def band(self, k: int) -> tuple[int, int]:
        """Output rows ``[start, stop)`` that are final after tile row ``k``."""
        start = max(0, k * self.stride - self.ramp)
        stop = self.height if k == self.n_rows - 1 else (k + 1) * self.stride - self.ramp
        return start, min(stop, self.height)

    def cols(self, j0: int, j1: int) -> tuple[int, int]:
        """Output columns ``[start, stop)`` that are final after tiles ``j0 .. j1-1`` of a tile
        row (and the tiles before ``j0``): :meth:`band` along the columns."""
        start = max(0, j0 * self.stride - self.ramp)
        stop = self.width if j1 >= self.n_cols else j1 * self.stride - self.ramp
        return start, min(stop, self.width)

    def chunk_tiles(self, chunk_px: int, batch_size: int = 1) -> int:
        """Tiles per column chunk: as many as fit ``chunk_px`` input pixels (``tile`` rows x
        ``(n - 1) * stride + tile`` columns), a multiple of ``batch_size`` (so batches never
        straddle chunks and match those of whole tile rows), at least one batch."""
        n = max(1, (chunk_px // self.tile - self.tile) // self.stride + 1)
        return max(batch_size, n // batch_size * batch_size)

    def chunks(self, chunk_px: int, batch_size: int = 1) -> list[tuple[int, int]]:
        """Tile-column ranges ``[j0, j1)`` of the column chunks of every tile row."""
        n = self.chunk_tiles(chunk_px, batch_size)
        return [(j, min(j + n, self.n_cols)) for j in range(0, self.n_cols, n)]

    def tile_rows_for_bands(self, first: int, stop: int) -> range:
        """Tile rows to compute so that bands ``first .. stop-1`` are complete."""
        return range(max(0, first - 1) if self.ramp else first, stop)
