"""Blend tile predictions into output cells, one column chunk of a tile row at a time.

:class:`ChunkStitcher` accumulates the weighted logits of the tiles of one column chunk
``[j0, j1)`` of tile row ``k`` (see :class:`~engine.data.tiling.TilePlan`) over raster rows
``[k*stride - ramp, (k+1)*stride)`` and columns ``[j0*stride - ramp, j1*stride)``, then hands out
the finished cell ``band(k) x cols(j0, j1)``. Float memory is per chunk, whatever the raster
width, except with ramp blending, which needs two carries:

* a **row carry**: the ``ramp`` rows below band ``k`` that tile row ``k + 1`` still adds to,
  across the full width (``(C + 1) x ramp x width`` float32; ``ramp / stride`` of a uint8 band
  of masks), and
* a **column carry**: the ``ramp`` columns right of the cell that the next chunk adds to
  (``(C + 1) x (stride + ramp) x ramp``).

Contributions are summed per pixel in the same order as a full-width accumulator would (tile
row ``k - 1`` left to right, then tile row ``k`` left to right), so the result does not depend
on the chunking, bit for bit (``tests/inference/test_seams.py``: chunked == unchunked ==
a plain full-raster accumulator, with tiles that disagree where they overlap). With
centre-crop blending (``ramp = 0``) every pixel comes from one tile with weight 1: the cell is
a copy of the tiles' cores.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.data.tiling import TilePlan

Cell = tuple[int, int, int, int, NDArray[np.float32], NDArray[np.bool_]]


class ChunkStitcher:
    """Accumulate the tiles of column chunks; emit cells
    ``(row_start, row_stop, col_start, col_stop, values[C,h,w], valid[h,w])``."""

    def __init__(self, plan: TilePlan) -> None:
        self.plan = plan
        self.row_acc: NDArray[np.float32] | None = None  # rows [k*s - ramp, k*s), full width
        self.row_wsum: NDArray[np.float32] | None = None
        self.row_carry_k = -1  # the tile row whose top rows the row carry holds
        self.seed_rows = False  # the current tile row starts from the row carry
        self.col_acc: NDArray[np.float32] | None = None
        self.col_wsum: NDArray[np.float32] | None = None
        self.k = self.j0 = self.j1 = 0
        self.r0 = self.r1 = self.c0 = self.c1 = 0
        self.acc: NDArray[np.float32] | None = None
        self.wsum: NDArray[np.float32] | None = None

    def start(self, k: int, j0: int, j1: int) -> None:
        """Begin chunk ``[j0, j1)`` of tile row ``k`` (chunks of a row left to right)."""
        p = self.plan
        s, ramp = p.stride, p.ramp
        self.k, self.j0, self.j1 = k, j0, j1
        self.r0, self.r1 = max(0, k * s - ramp), min(p.height, (k + 1) * s)
        self.c0, self.c1 = max(0, j0 * s - ramp), min(p.width, j1 * s)
        self.acc = None
        self.wsum = None
        if j0 == 0:
            self.col_acc = self.col_wsum = None
            self.seed_rows = self.row_carry_k == k

    def _allocate(self, channels: int) -> None:
        p = self.plan
        h, w = self.r1 - self.r0, self.c1 - self.c0
        if not p.ramp:  # centre crop: the tiles' cores tile the chunk, each pixel set once
            self.acc = np.empty((channels, h, w), dtype=np.float32)
            self.wsum = np.empty((0, 0), dtype=np.float32)
            return
        self.acc = np.zeros((channels, h, w), dtype=np.float32)
        self.wsum = np.zeros((h, w), dtype=np.float32)
        if self.row_acc is None:
            self.row_acc = np.zeros((channels, p.ramp, p.width), dtype=np.float32)
            self.row_wsum = np.zeros((p.ramp, p.width), dtype=np.float32)
        # seed in summation order: tile row k-1 first (row carry), then tile j0-1 (column carry)
        if self.seed_rows and self.row_wsum is not None:
            top = min(self.k * p.stride, p.height) - self.r0
            fc0, fc1 = p.cols(self.j0, self.j1)
            a, b = fc0 - self.c0, fc1 - self.c0
            self.acc[:, :top, a:b] = self.row_acc[:, :top, fc0:fc1]
            self.wsum[:top, a:b] = self.row_wsum[:top, fc0:fc1]
        if self.col_acc is not None and self.col_wsum is not None:
            n = self.col_acc.shape[-1]
            self.acc[:, :, :n] += self.col_acc
            self.wsum[:, :n] += self.col_wsum

    def add(self, j: int, logits: NDArray[np.float32]) -> None:
        """Add tile ``j`` of the current chunk (``logits[C, tile, tile]``), in column order."""
        p = self.plan
        if self.acc is None:
            self._allocate(logits.shape[0])
        assert self.acc is not None and self.wsum is not None
        oy, ox = p.row_origin(self.k), p.col_origin(j)
        lo, hi = max(self.c0, j * p.stride - p.ramp), min(self.c1, (j + 1) * p.stride)
        if hi <= lo:
            return
        rows = slice(self.r0 - oy, self.r1 - oy)
        cols = slice(lo - ox, hi - ox)
        if not p.ramp:  # weight 1 on the core: copy (the cell is the cores, exactly)
            self.acc[:, :, lo - self.c0 : hi - self.c0] = logits[:, rows, cols]
            return
        weight = p.weights[rows][:, None] * p.weights[cols][None, :]
        self.acc[:, :, lo - self.c0 : hi - self.c0] += logits[:, rows, cols] * weight
        self.wsum[:, lo - self.c0 : hi - self.c0] += weight

    def finish(self, valid: NDArray[np.bool_], valid_r0: int, valid_c0: int) -> Cell:
        """The finished cell of the current chunk; ``valid`` is the DSM valid mask of a window
        at ``(valid_r0, valid_c0)`` that covers it."""
        p = self.plan
        assert self.acc is not None and self.wsum is not None
        start, stop = p.band(self.k)
        cs, ce = p.cols(self.j0, self.j1)
        a, b, c, d = start - self.r0, stop - self.r0, cs - self.c0, ce - self.c0
        acc = self.acc[:, a:b, c:d]
        if p.ramp:
            wsum = self.wsum[a:b, c:d]
            out = np.divide(acc, wsum, out=np.zeros_like(acc), where=wsum > 0)
        else:
            out = acc
        cell_valid = valid[start - valid_r0 : stop - valid_r0, cs - valid_c0 : ce - valid_c0]
        if p.ramp:
            if self.row_acc is not None and self.row_wsum is not None and b < len(self.wsum):
                # rows [(k+1)*s - ramp, (k+1)*s) of the finished columns, for tile row k + 1
                self.row_acc[:, :, cs:ce] = self.acc[:, b:, c:d]
                self.row_wsum[:, cs:ce] = self.wsum[b:, c:d]
                self.row_carry_k = self.k + 1
            self.col_acc = self.acc[:, :, d:].copy() if d < self.acc.shape[-1] else None
            self.col_wsum = self.wsum[:, d:].copy() if d < self.acc.shape[-1] else None
        self.acc = self.wsum = None
        return start, stop, cs, ce, out, cell_valid.copy()
