"""Nesting of gap masks across thresholds: a gap at ``t`` must also be a gap at every ``t' > t``."""

from __future__ import annotations

import torch
from torch import Tensor


def _as_masks(x: Tensor, threshold: float) -> Tensor:
    return x if x.dtype == torch.bool else x >= threshold


def nesting_violations(masks_or_probs: Tensor, threshold: float = 0.5) -> Tensor:
    """Bool ``[B, H, W]``: pixels that are gap at some threshold but not at a higher one.

    Input ``[B, T, H, W]`` with thresholds ascending along T: bool masks, 0/1 values or
    probabilities (binarised at ``threshold``).
    """
    masks = _as_masks(masks_or_probs, threshold)
    return (masks[:, :-1] & ~masks[:, 1:]).any(dim=1)


def nesting_violation_rate(
    masks_or_probs: Tensor, valid: Tensor | None = None, threshold: float = 0.5
) -> float:
    """Fraction of (valid) pixels whose masks are not nested across thresholds (0 = nested).

    ``valid`` is ``[B, H, W]`` or ``[B, T, H, W]`` (a pixel counts if valid at every threshold).
    """
    if masks_or_probs.shape[1] < 2:
        return 0.0
    bad = nesting_violations(masks_or_probs, threshold)
    if valid is None:
        return float(bad.float().mean())
    v = valid.all(dim=1) if valid.ndim == 4 else valid
    n = int(v.sum())
    return float((bad & v).sum()) / n if n else 0.0


def enforce_nesting(probs: Tensor) -> Tensor:
    """Make probabilities monotone along thresholds (running maximum over ascending T)."""
    return torch.cummax(probs, dim=1).values
