"""Base of the per-threshold segmentation losses with a validity mask.

Every loss is called as ``loss(logits[B, T, H, W], target[B, T, H, W] (0/1 float),
valid[B, T, H, W] bool) -> scalar``. Each threshold ``k`` gets its own loss ``L_k`` averaged
over its *valid* pixels only (nodata, padding and ignored pixels have no effect at all), and
the result is the weighted mean ``sum_k w_k L_k / sum_k w_k`` (thresholds without valid
pixels are left out). After each call ``loss.components`` holds the detached per-threshold
parts (``{"focal": [T], "dice": [T], "total": [T]}``) for logging.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from engine.errors import InputError


def check_inputs(logits: Tensor, target: Tensor, valid: Tensor | None) -> Tensor:
    """Shape checks; returns ``valid`` as a bool tensor shaped like ``logits``."""
    if logits.ndim != 4 or target.shape != logits.shape:
        raise InputError(
            f"Loss expects logits and target of the same shape [B, T, H, W], got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}."
        )
    if valid is None:
        return torch.ones_like(logits, dtype=torch.bool)
    return valid.to(torch.bool).expand_as(logits)


def masked_mean(values: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Per-threshold mean of ``values[B, T, H, W]`` over valid pixels; returns (mean, count)."""
    v = valid.to(values.dtype)
    count = v.sum(dim=(0, 2, 3))
    total = (torch.where(valid, values, torch.zeros_like(values))).sum(dim=(0, 2, 3))
    return total / count.clamp_min(1.0), count


class ThresholdLoss(nn.Module):
    """Base class: subclasses implement :meth:`parts`; this class weights and reduces them."""

    threshold_weights: Tensor | None

    def __init__(self, threshold_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        w = (
            None
            if threshold_weights is None
            else torch.tensor(list(threshold_weights), dtype=torch.float32)
        )
        if w is not None and (w.ndim != 1 or bool((w < 0).any()) or float(w.sum()) <= 0):
            raise InputError(
                f"Threshold weights must be non-negative and not all 0, got {threshold_weights!r}."
            )
        self.register_buffer("threshold_weights", w)
        self.components: dict[str, Tensor] = {}

    def parts(self, logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """Per-threshold terms ``{name: [T]}`` plus ``"count"`` (valid pixels per threshold)."""
        raise NotImplementedError

    def combine(self, parts: dict[str, Tensor]) -> Tensor:
        """Per-threshold total ``[T]`` from :meth:`parts` (default: sum of the terms)."""
        terms = [v for k, v in parts.items() if k != "count"]
        return torch.stack(terms).sum(dim=0)

    def per_threshold(
        self, logits: Tensor, target: Tensor, valid: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(L [T], valid pixel counts [T])``; also refreshes :attr:`components`."""
        mask = check_inputs(logits, target, valid)
        parts = self.parts(logits, target.to(logits.dtype), mask)
        count = parts["count"]
        total = self.combine(parts)
        self.components = {k: v.detach() for k, v in parts.items() if k != "count"}
        self.components["total"] = total.detach()
        return total, count

    def weights_for(self, count: Tensor) -> Tensor:
        """Threshold weights (ones by default), zero where a threshold has no valid pixel."""
        n = count.shape[0]
        w = (
            torch.ones(n, device=count.device)
            if self.threshold_weights is None
            else self.threshold_weights
        )
        if w.shape[0] != n:
            raise InputError(
                f"The loss has {w.shape[0]} threshold weights but the batch has {n} thresholds."
            )
        return w.to(count.device, count.dtype) * (count > 0).to(count.dtype)

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        total, count = self.per_threshold(logits, target, valid)
        w = self.weights_for(count)
        return (w * total).sum() / w.sum().clamp_min(1e-12)

    def component_values(self, thresholds: Sequence[float] | None = None) -> dict[str, float]:
        """:attr:`components` flattened to ``{"focal@5m": value}`` (or ``focal@k``) floats."""
        out: dict[str, float] = {}
        for name, values in self.components.items():
            for k, v in enumerate(values.tolist()):
                label = f"{thresholds[k]:g}m" if thresholds is not None else str(k)
                out[f"{name}@{label}"] = float(v)
        return out
