"""Blend tile predictions into output row bands with a rolling accumulator.

:class:`RowStitcher` holds ``stride + ramp`` rows of weighted sums across the full raster
width (never the full raster): tile row ``k`` adds its weighted logits, then band ``k`` (see
:class:`~engine.inference.tiling.TilePlan`) is final and handed out, and the ``ramp`` rows that
the next tile row still contributes to move to the top of the buffer.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.inference.tiling import TilePlan


class RowStitcher:
    """Accumulate tile rows; emit row bands ``(start, stop, values[C,h,W], valid[h,W])``."""

    def __init__(self, plan: TilePlan, channels: int, first_tile_row: int = 0) -> None:
        self.plan = plan
        self.channels = channels
        rows = plan.stride + plan.ramp
        self.acc = np.zeros((channels, rows, plan.width), dtype=np.float32)
        self.wsum = np.zeros((rows, plan.width), dtype=np.float32)
        self.valid = np.zeros((rows, plan.width), dtype=bool)
        self.buf_start = first_tile_row * plan.stride - plan.ramp
        self.next_row = first_tile_row

    def add(
        self,
        k: int,
        logits: NDArray[np.float32],
        valid_rows: NDArray[np.bool_],
        valid_r0: int,
    ) -> tuple[int, int, NDArray[np.float32], NDArray[np.bool_]]:
        """Add tile row ``k`` (``logits[n_cols, C, tile, tile]``); return band ``k``.

        ``valid_rows`` is the DSM valid mask of raster rows ``valid_r0 ..`` over the full width.
        """
        if k != self.next_row:
            raise RuntimeError(
                f"Tile rows must arrive in order: expected {self.next_row}, got {k}."
            )
        plan = self.plan
        s, ramp, m, w = plan.stride, plan.ramp, plan.margin, plan.width
        assert self.buf_start == k * s - ramp
        prof = plan.weights[m : m + s + ramp]  # nonzero part: raster rows/cols [k*s-ramp, (k+1)*s)
        for j in range(plan.n_cols):
            c0 = j * s - ramp
            lo, hi = max(c0, 0), min(c0 + s + ramp, w)
            if hi <= lo:
                continue
            wc = prof[lo - c0 : hi - c0]
            tile = logits[j, :, m : m + s + ramp, m + lo - c0 : m + hi - c0]
            weight = prof[:, None] * wc[None, :]
            self.acc[:, :, lo:hi] += tile * weight
            self.wsum[:, lo:hi] += weight
        # valid mask of the buffer rows that this strip covers
        r_lo, r_hi = (
            max(self.buf_start, valid_r0),
            min(self.buf_start + len(self.wsum), valid_r0 + len(valid_rows)),
        )
        if r_hi > r_lo:
            self.valid[r_lo - self.buf_start : r_hi - self.buf_start] = valid_rows[
                r_lo - valid_r0 : r_hi - valid_r0
            ]
        start, stop = plan.band(k)
        a, b = start - self.buf_start, stop - self.buf_start
        wsum = self.wsum[a:b]
        out = np.divide(self.acc[:, a:b], wsum, out=np.zeros_like(self.acc[:, a:b]), where=wsum > 0)
        valid = self.valid[a:b].copy()
        self._shift()
        return start, stop, out, valid

    def _shift(self) -> None:
        s, ramp = self.plan.stride, self.plan.ramp
        if ramp:
            self.acc[:, :ramp] = self.acc[:, s : s + ramp]
            self.wsum[:ramp] = self.wsum[s : s + ramp]
            self.valid[:ramp] = self.valid[s : s + ramp]
        self.acc[:, ramp:] = 0.0
        self.wsum[ramp:] = 0.0
        self.valid[ramp:] = False
        self.buf_start += s
        self.next_row += 1
