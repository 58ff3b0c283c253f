"""FiLM conditioning on the height threshold: ``x * (1 + gamma(t)) + beta(t)``.

:class:`ThresholdEmbedding` maps thresholds in metres to a feature vector; each
:class:`FiLM` layer turns it into per-channel ``gamma`` and ``beta`` with a zero-initialised
linear layer, so a freshly built model is exactly the unconditioned network (identity FiLM)
and learns how the threshold should modulate it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ThresholdEmbedding(nn.Module):
    """``[T]`` thresholds (metres) -> ``[T, dim]`` embedding (Fourier features + MLP)."""

    freqs: Tensor

    def __init__(self, dim: int = 32, scale_m: float = 10.0, frequencies: int = 4) -> None:
        super().__init__()
        self.scale_m = float(scale_m)
        self.register_buffer(
            "freqs",
            torch.tensor([math.pi * 2.0**k for k in range(frequencies)]) / 4.0,
            persistent=False,
        )
        self.mlp = nn.Sequential(
            nn.Linear(1 + 2 * frequencies, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU()
        )
        self.dim = dim

    def forward(self, thresholds: Tensor) -> Tensor:
        t = (thresholds.reshape(-1, 1).to(self.freqs.dtype)) / self.scale_m
        angles = t * self.freqs
        return self.mlp(torch.cat([t, torch.sin(angles), torch.cos(angles)], dim=1))


class FiLM(nn.Module):
    """Feature-wise affine modulation from a threshold embedding; identity at initialisation."""

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.to_params = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.to_params.weight)
        nn.init.zeros_(self.to_params.bias)

    def params(self, embedding: Tensor) -> tuple[Tensor, Tensor]:
        """``(gamma, beta)``, each ``[T, channels]``."""
        gamma, beta = self.to_params(embedding).chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        """Modulate ``x[B*T, C, H, W]`` (T consecutive per sample) by ``embedding[T, E]``."""
        gamma, beta = self.params(embedding)
        t = embedding.shape[0]
        c = self.channels
        gamma = gamma.unsqueeze(0).expand(x.shape[0] // t, t, c).reshape(-1, c, 1, 1)
        beta = beta.unsqueeze(0).expand(x.shape[0] // t, t, c).reshape(-1, c, 1, 1)
        return x * (1 + gamma) + beta
