"""DeepLabV3+-style light model: residual encoder, ASPP, decoder with a stride-2 skip."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.models.aspp import ASPP
from engine.models.base import EncoderDecoderModel
from engine.models.blocks import ConvNormAct
from engine.models.encoders import ResidualEncoder
from engine.models.heads import make_head
from engine.models.thresholds import DEFAULT_THRESHOLDS, as_threshold_list


class DeepLabDecoder(nn.Module):
    """ASPP on the deepest features, upsampled and fused with the stride-2 features."""

    def __init__(
        self,
        encoder_channels: list[int],
        aspp_channels: int,
        rates: Sequence[int],
        norm: str = "batch",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.depth = len(encoder_channels) - 1
        self.aspp = ASPP(encoder_channels[-1], aspp_channels, rates, norm=norm, dropout=dropout)
        low_ch = max(8, encoder_channels[1] // 2)
        self.low = ConvNormAct(encoder_channels[1], low_ch, kernel=1, norm=norm)
        self.fuse = nn.Sequential(
            ConvNormAct(aspp_channels + low_ch, aspp_channels, norm=norm),
            ConvNormAct(aspp_channels, aspp_channels, norm=norm),
        )
        self.out_channels = aspp_channels

    def forward(self, features: list[Tensor]) -> Tensor:
        x = self.aspp(features[-1])
        x = F.interpolate(
            x, scale_factor=float(2 ** (self.depth - 1)), mode="bilinear", align_corners=False
        )
        x = self.fuse(torch.cat([x, self.low(features[1])], dim=1))
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class DeepLabLite(EncoderDecoderModel):
    """Light DeepLabV3+: output stride ``2**depth``, ASPP rates for small tiles.

    Args:
        aspp_channels: ASPP/decoder width (default ``4 * base_channels``).
        aspp_rates: dilation rates of the ASPP 3x3 branches.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 3,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        head: str = "cumulative",
        norm: str = "batch",
        dropout: float = 0.1,
        drop_path: float = 0.0,
        aspp_channels: int | None = None,
        aspp_rates: Sequence[int] = (2, 4, 6),
    ) -> None:
        if depth < 2:
            raise ConfigError(f"deeplab_lite needs depth >= 2, got {depth}.")
        ts = as_threshold_list(thresholds)
        encoder = ResidualEncoder(in_channels, base_channels, depth, norm=norm, drop_path=drop_path)
        decoder = DeepLabDecoder(
            encoder.channels,
            aspp_channels or 4 * base_channels,
            aspp_rates,
            norm=norm,
            dropout=dropout,
        )
        super().__init__(
            encoder, decoder, make_head(head, decoder.out_channels, ts), in_channels, depth, ts
        )
