"""U-Net decoders: upsample, (gate the skip), concatenate, convolve; back to full resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.attention import AttentionGate
from engine.models.blocks import ConvBlock, ResidualBlock


class DecoderStage(nn.Module):
    """One decoder level: ``block(cat(upsample(x), gate(skip)))``."""

    def __init__(
        self,
        in_ch: int,
        skip_ch: int,
        out_ch: int,
        norm: str = "batch",
        dropout: float = 0.0,
        attention: bool = False,
        residual: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.gate = AttentionGate(skip_ch, in_ch, norm=norm) if attention else None
        self.block: nn.Module
        if residual:
            self.block = ResidualBlock(
                in_ch + skip_ch, out_ch, norm=norm, dropout=dropout, drop_path=drop_path
            )
        else:
            self.block = ConvBlock(in_ch + skip_ch, out_ch, norm=norm, dropout=dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.gate is not None:
            skip = self.gate(skip, x)
        return self.block(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Decoder over features ``[f0 .. f_depth]``; output has ``encoder_channels[0]`` channels."""

    def __init__(
        self,
        encoder_channels: list[int],
        norm: str = "batch",
        dropout: float = 0.0,
        attention: bool = False,
        residual: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        chans = encoder_channels
        self.stages = nn.ModuleList(
            DecoderStage(
                chans[i + 1],
                chans[i],
                chans[i],
                norm=norm,
                dropout=dropout,
                attention=attention,
                residual=residual,
                drop_path=drop_path,
            )
            for i in reversed(range(len(chans) - 1))
        )
        self.out_channels = chans[0]

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[-1]
        for stage, skip in zip(self.stages, reversed(features[:-1]), strict=True):
            x = stage(x, skip)
        return x
