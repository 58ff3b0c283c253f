"""Threshold-conditioned U-Net: FiLM layers let one network predict gaps at any threshold.

The encoder runs once per tile; the decoder runs once per requested threshold (batched as
``B*T``), modulated by FiLM at the bottleneck and after every decoder stage. FiLM starts as
the identity, so at initialisation every threshold gives the same output.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from engine.models.base import GapModel
from engine.models.decoders import UNetDecoder
from engine.models.encoders import UNetEncoder
from engine.models.film import FiLM, ThresholdEmbedding
from engine.models.thresholds import DEFAULT_THRESHOLDS, ThresholdsLike, as_threshold_list


def _repeat(x: Tensor, times: int) -> Tensor:
    """``[B, ...] -> [B*times, ...]``, each sample repeated ``times`` times consecutively."""
    return x.unsqueeze(1).expand(-1, times, *x.shape[1:]).flatten(0, 1)


class FiLMUNet(GapModel):
    """U-Net whose decoder is conditioned on the threshold (``conditioned = True``).

    Args:
        thresholds: the default (training) thresholds; any others can be requested.
        embed_dim: size of the threshold embedding.
        threshold_scale_m: thresholds are divided by this before the embedding.
    """

    output_kind = "independent"
    conditioned = True

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        norm: str = "batch",
        dropout: float = 0.0,
        embed_dim: int = 32,
        threshold_scale_m: float = 10.0,
    ) -> None:
        super().__init__(in_channels, depth, as_threshold_list(thresholds))
        self.encoder = UNetEncoder(in_channels, base_channels, depth, norm=norm, dropout=dropout)
        self.decoder = UNetDecoder(self.encoder.channels, norm=norm, dropout=dropout)
        self.embedding = ThresholdEmbedding(embed_dim, scale_m=threshold_scale_m)
        chans = self.encoder.channels
        self.films = nn.ModuleList(FiLM(embed_dim, c) for c in [chans[-1], *reversed(chans[:-1])])
        self.head = nn.Conv2d(self.decoder.out_channels, 1, 1)

    def forward(self, x: Tensor, thresholds: ThresholdsLike | None = None) -> Tensor:
        self.check_input(x)
        t = self.threshold_tensor(thresholds, x)
        t = self.default_thresholds.to(x.dtype) if t is None else t
        emb = self.embedding(t)
        n = emb.shape[0]
        features = self.encoder(x)
        y = self.films[0](_repeat(features[-1], n), emb)
        skips = list(reversed(features[:-1]))
        for stage, film, skip in zip(self.decoder.stages, self.films[1:], skips, strict=True):
            y = film(stage(y, _repeat(skip, n)), emb)
        logits = self.head(y)  # [B*T, 1, H, W]
        return logits.reshape(-1, n, logits.shape[2], logits.shape[3])
