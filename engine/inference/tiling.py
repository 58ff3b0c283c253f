"""Window plan for streamed inference: tile origins, blending weights and output row bands.

A tile of ``tile`` pixels (a multiple of ``2**depth``) is cut at origin ``k * stride - margin -
ramp`` along each axis. Its 1-D weight profile is::

    0 (margin) | ramp up (ramp) | 1 (stride - ramp) | ramp down (ramp) | 0 (margin)

so ``stride = tile - 2 * margin - ramp``. The ramps are ``sin^2`` / ``cos^2`` halves: adjacent
tiles' ramps sum to exactly 1, so the weights form a partition of unity over the raster and the
blended value is a plain weighted sum (we still divide by the summed weight, which is 1 up to
rounding, and makes the last, partly covered rows exact too).

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

Outside the raster, tiles hold the *reflection* of the raster about its edge
(:func:`reflect_index`, numpy's ``"reflect"`` mode); the whole-image reference
(:func:`whole_image_indices`) pads the same way, so both see identical input everywhere.

Output is emitted by row band: band ``k`` covers rows ``[k * stride - ramp, (k + 1) * stride -
ramp)`` (clipped to the raster; the last band runs to the bottom). It is final once tile rows
``k - 1`` and ``k`` are done. Within a tile row, tiles are computed in **column chunks** of at
most :meth:`TilePlan.chunk_tiles` tiles (a bounded number of input pixels, whatever the raster
width); chunk ``[j0, j1)`` finalises the columns :meth:`TilePlan.cols` ``(j0, j1)``, defined
like the bands along the other axis, so a finished piece of output is the *cell*
``band(k) x cols(j0, j1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError


def reflect_index(index: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Map any pixel index onto ``[0, size)`` by mirror reflection without repeating the edge."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    m = np.mod(index, period)
    return np.where(m < size, m, period - m)


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
                f"Use e.g. {max(self.multiple, self.tile // self.multiple * self.multiple)}.",
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

    def padded_width(self) -> int:
        """Width of a tile-row strip: all tiles side by side, overlapping."""
        return (self.n_cols - 1) * self.stride + self.tile


def split_bands(n_bands: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous share ``[first, stop)`` of ``n_bands`` row bands for ``rank`` of ``world``."""
    base, extra = divmod(n_bands, world)
    first = rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)


def whole_image_indices(size: int, lead: int, multiple: int) -> NDArray[np.int64]:
    """Source indices of a whole-image pass padded like the tiles: ``lead`` reflected pixels
    before the raster, then up to the next multiple of ``multiple`` (at least ``lead`` after)."""
    total = size + 2 * lead
    total = -(-total // multiple) * multiple
    return reflect_index(np.arange(-lead, total - lead, dtype=np.int64), size)
