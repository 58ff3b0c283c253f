"""Convolution building blocks shared by the encoders and decoders."""

from __future__ import annotations

from torch import Tensor, nn

from engine.models.droppath import DropPath
from engine.models.norm import norm_layer


class ConvNormAct(nn.Sequential):
    """3x3 (or ``kernel``) convolution, normalisation, ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm: str = "batch",
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=False
            ),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
        )


class ConvBlock(nn.Sequential):
    """Two :class:`ConvNormAct` (the classic U-Net block), optional spatial dropout."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch", dropout: float = 0.0) -> None:
        super().__init__(
            ConvNormAct(in_ch, out_ch, norm=norm),
            ConvNormAct(out_ch, out_ch, norm=norm),
            nn.Dropout2d(dropout),
        )


class ResidualBlock(nn.Module):
    """Residual block: ``act(shortcut(x) + drop_path(conv-norm-act-conv-norm(x)))``."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        norm: str = "batch",
        dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            ConvNormAct(in_ch, out_ch, stride=stride, norm=norm),
            nn.Dropout2d(dropout),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            norm_layer(norm, out_ch),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), norm_layer(norm, out_ch)
            )
        self.drop_path = DropPath(drop_path)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shortcut(x) + self.drop_path(self.branch(x)))
