"""U-Net baseline and residual attention U-Net: encoder + decoder + threshold head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.models.base import EncoderDecoderModel
from engine.models.decoders import UNetDecoder
from engine.models.encoders import ResidualEncoder, UNetEncoder
from engine.models.heads import make_head
from engine.models.thresholds import DEFAULT_THRESHOLDS, as_threshold_list


class UNet(EncoderDecoderModel):
    """U-Net (Ronneberger et al.) with a cumulative (nested) head by default.

    Args:
        in_channels: input bands (1 = normalised DSM).
        base_channels: channels of the first level, doubled at each of the ``depth`` levels.
        depth: number of 2x down-samplings; tiles must be multiples of ``2**depth``.
        thresholds: height thresholds in metres (sorted ascending).
        head: ``cumulative`` | ``independent`` | ``height`` | ``residual_height`` |
            ``ground_residual`` (see :mod:`engine.models.heads`).
        head_args: extra arguments of the head (``ground_residual``: its base channels).
        norm: ``batch`` | ``group``.
        dropout: spatial dropout at the bottleneck and in decoder blocks.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        head: str = "cumulative",
        norm: str = "batch",
        dropout: float = 0.0,
        head_args: dict[str, Any] | None = None,
    ) -> None:
        ts = as_threshold_list(thresholds)
        encoder = UNetEncoder(in_channels, base_channels, depth, norm=norm, dropout=dropout)
        decoder = UNetDecoder(encoder.channels, norm=norm, dropout=dropout)
        head_module = make_head(head, decoder.out_channels, ts, **(head_args or {}))
        super().__init__(encoder, decoder, head_module, in_channels, depth, ts)


class ResUNetAttention(EncoderDecoderModel):
    """Residual U-Net with attention gates on the skips and stochastic depth (``drop_path``)."""

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        head: str = "cumulative",
        norm: str = "batch",
        dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        ts = as_threshold_list(thresholds)
        encoder = ResidualEncoder(
            in_channels, base_channels, depth, norm=norm, dropout=dropout, drop_path=drop_path
        )
        decoder = UNetDecoder(
            encoder.channels,
            norm=norm,
            dropout=dropout,
            attention=True,
            residual=True,
            drop_path=drop_path,
        )
        super().__init__(
            encoder, decoder, make_head(head, decoder.out_channels, ts), in_channels, depth, ts
        )
