"""Atrous Spatial Pyramid Pooling (DeepLabV3): parallel dilated convs plus image pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from engine.models.blocks import ConvNormAct


class ImagePooling(nn.Module):
    """Global average -> 1x1 conv -> broadcast back to the input size (ONNX friendly).

    No normalisation layer: a pooled 1x1 map of a batch of one has no statistics to normalise.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.proj(x.mean(dim=(2, 3), keepdim=True))
        return pooled.expand(-1, -1, x.shape[2], x.shape[3])


class ASPP(nn.Module):
    """1x1 conv, a 3x3 conv per dilation ``rate`` and image pooling; concatenated, projected."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        rates: Sequence[int] = (2, 4, 6),
        norm: str = "batch",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvNormAct(in_ch, out_ch, kernel=1, norm=norm)]
        branches += [ConvNormAct(in_ch, out_ch, dilation=int(r), norm=norm) for r in rates]
        branches.append(ImagePooling(in_ch, out_ch))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            ConvNormAct(out_ch * len(branches), out_ch, kernel=1, norm=norm), nn.Dropout2d(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))
