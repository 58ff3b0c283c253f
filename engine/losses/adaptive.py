"""Learned per-threshold weights: homoscedastic uncertainty weighting (Kendall et al., 2018).

``loss = sum_k w_k (exp(-s_k) L_k + s_k) / sum_k w_k`` with a learnable log-variance ``s_k``
per threshold (``w_k`` are the optional fixed threshold weights, 1 by default). Thresholds
that are hard (high ``L_k``) get lower weight ``exp(-s_k)`` but pay ``s_k``; the optimum is
``s_k = log L_k``. The loss can be negative. **Add ``loss.parameters()`` to the optimiser**
(without weight decay).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.losses.base import ThresholdLoss


class AdaptiveLoss(ThresholdLoss):
    """Wrap a :class:`ThresholdLoss` and learn how much each threshold counts."""

    def __init__(self, base: ThresholdLoss, num_thresholds: int, init_log_var: float = 0.0) -> None:
        super().__init__(
            None if base.threshold_weights is None else base.threshold_weights.tolist()
        )
        self.base = base
        self.log_vars = nn.Parameter(torch.full((int(num_thresholds),), float(init_log_var)))

    @property
    def learned_weights(self) -> Tensor:
        """Current ``exp(-s_k)`` per threshold (detached)."""
        return torch.exp(-self.log_vars.detach())

    def parts(self, logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        return self.base.parts(logits, target, valid)

    def combine(self, parts: dict[str, Tensor]) -> Tensor:
        return self.base.combine(parts)

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        total, count = self.base.per_threshold(logits, target, valid)
        s = self.log_vars.to(total.dtype)
        adjusted = torch.exp(-s) * total + s
        self.components = {
            **self.base.components,
            "weight": self.learned_weights,
            "adjusted": adjusted.detach(),
        }
        w = self.weights_for(count)
        return (w * adjusted).sum() / w.sum().clamp_min(1e-12)
