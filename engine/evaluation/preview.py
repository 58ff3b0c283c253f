"""Small error maps for figures: TP/FP/FN/TN classes, downsampled by blocks (majority class)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import NODATA

TN, FP, FN, TP = 0, 1, 2, 3
CLASS_NAMES = {TN: "TN (canopy)", FP: "FP (false gap)", FN: "FN (missed gap)", TP: "TP (gap)"}


def error_classes(pred: NDArray[np.uint8], ref: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Per pixel: 0 TN, 1 FP, 2 FN, 3 TP, 255 where either mask is nodata."""
    out = ((pred == 1).astype(np.uint8) + 2 * (ref == 1).astype(np.uint8)).astype(np.uint8)
    # pred only -> 1 (FP), ref only -> 2 (FN), both -> 3 (TP), neither -> 0 (TN)
    out[(pred == NODATA) | (ref == NODATA)] = NODATA
    return out


def block_mode(classes: NDArray[np.uint8], max_px: int = 800) -> NDArray[np.uint8]:
    """Downsample so that no side exceeds ``max_px``: each block shows its most common class.

    Nodata wins a block only when the block holds no valid pixel.
    """
    h, w = classes.shape
    f = max(1, math.ceil(max(h, w) / max_px))
    if f == 1:
        return classes.copy()
    hp, wp = -(-h // f) * f, -(-w // f) * f
    padded = np.full((hp, wp), NODATA, dtype=np.uint8)
    padded[:h, :w] = classes
    blocks = padded.reshape(hp // f, f, wp // f, f)
    counts = np.stack([(blocks == c).sum(axis=(1, 3)) for c in (TN, FP, FN, TP)])
    out = np.argmax(counts, axis=0).astype(np.uint8)
    out[counts.sum(axis=0) == 0] = NODATA
    return out
