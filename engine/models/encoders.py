"""U-Net style encoders: a list of features at strides 1, 2, ..., 2**depth."""

from __future__ import annotations

from torch import Tensor, nn

from engine.models.blocks import ConvBlock, ResidualBlock


def level_channels(base_channels: int, depth: int, max_channels: int | None = None) -> list[int]:
    """Channels per level: ``base * 2**i``, capped at ``max_channels``."""
    chans = [base_channels * 2**i for i in range(depth + 1)]
    return [min(c, max_channels) for c in chans] if max_channels else chans


class UNetEncoder(nn.Module):
    """Plain U-Net encoder: conv block, then (max-pool, conv block) ``depth`` times."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        depth: int,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = level_channels(base_channels, depth)
        stages: list[nn.Module] = [ConvBlock(in_channels, self.channels[0], norm=norm)]
        for i in range(1, depth + 1):
            drop = dropout if i == depth else 0.0
            stages.append(
                nn.Sequential(
                    nn.MaxPool2d(2), ConvBlock(self.channels[i - 1], self.channels[i], norm, drop)
                )
            )
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ResidualEncoder(nn.Module):
    """Residual encoder: per level one strided and one plain residual block (stochastic depth)."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        depth: int,
        norm: str = "batch",
        dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = level_channels(base_channels, depth)
        n_blocks = 2 * (depth + 1)
        rates = [drop_path * i / max(1, n_blocks - 1) for i in range(n_blocks)]
        stages: list[nn.Module] = []
        for i, ch in enumerate(self.channels):
            prev = in_channels if i == 0 else self.channels[i - 1]
            drop = dropout if i == depth else 0.0
            stages.append(
                nn.Sequential(
                    ResidualBlock(
                        prev, ch, stride=1 if i == 0 else 2, norm=norm, drop_path=rates[2 * i]
                    ),
                    ResidualBlock(ch, ch, norm=norm, dropout=drop, drop_path=rates[2 * i + 1]),
                )
            )
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
