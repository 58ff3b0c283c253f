"""Gap fraction per grid cell, predicted vs reference: R², RMSE and bias.

The area is cut into square cells of ``cell_px`` pixels (``cell_size_m / pixel size``) from the
raster's top-left corner. In each cell the gap fraction is ``gap pixels / valid pixels`` over the
pixels valid in *both* masks; cells with fewer than ``min_valid_fraction`` of a full cell valid
are skipped. With p = predicted and r = reference fraction over the n kept cells:

- bias = mean(p - r)  (positive: the prediction over-estimates gap fraction)
- RMSE = sqrt(mean((p - r)²))
- R² = 1 - sum((p - r)²) / sum((r - mean r)²)  (coefficient of determination of p as a
  predictor of r, so bias lowers it; None with a note when the reference has no variance)

:class:`CellStats` keeps sums only, so windows aligned to cells and several sites add up exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import NODATA


def _block_sum(a: NDArray[np.generic], c: int) -> NDArray[np.int64]:
    h, w = a.shape
    hp, wp = -(-h // c) * c, -(-w // c) * c
    padded = np.zeros((hp, wp), dtype=np.int64)
    padded[:h, :w] = a
    return padded.reshape(hp // c, c, wp // c, c).sum(axis=(1, 3))


def cell_fractions(
    pred: NDArray[np.uint8], ref: NDArray[np.uint8], cell_px: int, min_valid_fraction: float = 0.5
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Predicted and reference gap fractions of the kept cells (two 1-D arrays, same order)."""
    if cell_px < 1:
        raise ValueError("cell_px must be at least 1.")
    valid = (pred != NODATA) & (ref != NODATA)
    n_valid = _block_sum(valid, cell_px)
    n_pred = _block_sum((pred == 1) & valid, cell_px)
    n_ref = _block_sum((ref == 1) & valid, cell_px)
    keep = (n_valid > 0) & (n_valid >= min_valid_fraction * cell_px * cell_px)
    v = n_valid[keep].astype(np.float64)
    return n_pred[keep] / v, n_ref[keep] / v


@dataclass
class CellStats:
    """Sufficient sums for gap-fraction agreement over cells; add to pool windows or sites."""

    n: int = 0
    sum_p: float = 0.0
    sum_r: float = 0.0
    sum_rr: float = 0.0
    sum_err: float = 0.0
    sum_err2: float = 0.0

    def __add__(self, other: CellStats) -> CellStats:
        return CellStats(
            self.n + other.n,
            self.sum_p + other.sum_p,
            self.sum_r + other.sum_r,
            self.sum_rr + other.sum_rr,
            self.sum_err + other.sum_err,
            self.sum_err2 + other.sum_err2,
        )

    @classmethod
    def from_fractions(cls, p: NDArray[np.float64], r: NDArray[np.float64]) -> CellStats:
        """Sums of one set of cell fractions."""
        e = p - r
        return cls(
            int(p.size),
            float(p.sum()),
            float(r.sum()),
            float((r * r).sum()),
            float(e.sum()),
            float((e * e).sum()),
        )

    def metrics(self) -> dict[str, Any]:
        """R², RMSE, bias and mean fractions (None with a note where undefined)."""
        notes: list[str] = []
        out: dict[str, Any] = {
            "cells": self.n,
            "r2": None,
            "rmse": None,
            "bias": None,
            "mean_pred": None,
            "mean_ref": None,
        }
        if self.n == 0:
            notes.append("no cell with enough valid pixels: gap-fraction metrics undefined")
        else:
            out["rmse"] = math.sqrt(self.sum_err2 / self.n)
            out["bias"] = self.sum_err / self.n
            out["mean_pred"] = self.sum_p / self.n
            out["mean_ref"] = self.sum_r / self.n
            ss_tot = self.sum_rr - self.sum_r * self.sum_r / self.n
            if ss_tot > 1e-12 * self.n:
                out["r2"] = 1.0 - self.sum_err2 / ss_tot
            elif self.sum_err2 == 0:
                out["r2"] = 1.0
                notes.append("reference gap fraction is constant and matched exactly: R² set to 1")
            else:
                notes.append("reference gap fraction is constant over cells: R² undefined")
        out["notes"] = notes
        return out


def gap_fraction_stats(
    pred: NDArray[np.uint8], ref: NDArray[np.uint8], cell_px: int, min_valid_fraction: float = 0.5
) -> CellStats:
    """:class:`CellStats` of one window (rows/cols should start on cell boundaries)."""
    return CellStats.from_fractions(*cell_fractions(pred, ref, cell_px, min_valid_fraction))
