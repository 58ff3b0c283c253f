"""The interface every gap model implements, and the encoder-decoder-head wiring.

``forward(x[B, C, H, W], thresholds[T] metres | None) -> logits[B, T, H, W]``. ``thresholds``
defaults to the list the model was built with (ascending). Attributes: ``in_channels``,
``depth`` (H and W must be multiples of ``2**depth``), ``conditioned`` (accepts any
threshold), ``output_kind`` (``cumulative``, ``independent`` or ``height``), ``thresholds``,
plus ``name`` and ``args`` (set by the registry, used by model files).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engine.errors import InputError
from engine.models.heads import Head
from engine.models.thresholds import ThresholdsLike, as_threshold_list, to_tensor


def _exporting() -> bool:
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


class GapModel(nn.Module):
    """Base class: input checks, default thresholds, architecture description."""

    output_kind: str = "independent"
    conditioned: bool = False
    default_thresholds: Tensor

    def __init__(self, in_channels: int, depth: int, thresholds: Sequence[float]) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.depth = int(depth)
        self.name = type(self).__name__.lower()
        self.args: dict[str, Any] = {}
        self.register_buffer(
            "default_thresholds",
            torch.tensor(as_threshold_list(thresholds), dtype=torch.float32),
            persistent=False,
        )

    @property
    def thresholds(self) -> list[float]:
        """The thresholds (metres, ascending) the model was built with."""
        return [float(v) for v in self.default_thresholds.tolist()]

    @property
    def architecture(self) -> dict[str, Any]:
        """``{"name", "args"}``: what :func:`engine.models.build_model` needs to rebuild it."""
        return {"name": self.name, "args": dict(self.args)}

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`InputError` for a wrong rank, channel count or tile size."""
        if _exporting():
            return
        if x.ndim != 4:
            raise InputError(
                f"Model input must be [batch, channels, height, width], got shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise InputError(
                f"Model expects {self.in_channels} input channel(s), got {x.shape[1]}.",
                "Use the same input bands as in training.",
            )
        m = 2**self.depth
        if x.shape[2] % m or x.shape[3] % m:
            raise InputError(
                f"Model input height and width must be multiples of {m}, "
                f"got {x.shape[2]} x {x.shape[3]}.",
                f"Pad the tile to a multiple of {m} pixels.",
            )

    def threshold_tensor(self, thresholds: ThresholdsLike | None, like: Tensor) -> Tensor | None:
        """``thresholds`` as a tensor on ``like``'s device (None stays None)."""
        return None if thresholds is None else to_tensor(thresholds, like)

    def forward_all(
        self, x: Tensor, thresholds: ThresholdsLike | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``(logits, canopy height or None)``; models without a height estimate give None."""
        return self(x, thresholds), None

    @property
    def estimates_height(self) -> bool:
        """True when :meth:`forward_all` returns a canopy height."""
        head = getattr(self, "head", None)
        return head is not None and type(head).height is not Head.height


class EncoderDecoderModel(GapModel):
    """``head(decoder(encoder(x)), thresholds)``, the segmentation_models_pytorch wiring."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        head: Head,
        in_channels: int,
        depth: int,
        thresholds: Sequence[float],
    ) -> None:
        super().__init__(in_channels, depth, thresholds)
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.output_kind = head.output_kind
        self.conditioned = head.conditioned

    def forward(
        self, x: Tensor, thresholds: ThresholdsLike | None = None, with_height: bool = False
    ) -> Any:
        """Logits ``[B, T, H, W]``; with ``with_height`` also the canopy height ``[B, 1, H, W]``
        (metres, None for heads without one): one pass, so DDP sees both."""
        self.check_input(x)
        features = self.decoder(self.encoder(x))
        ts = self.threshold_tensor(thresholds, x)
        logits = self.head(features, ts, x) if self.head.needs_input else self.head(features, ts)
        return (logits, self.head.height(features, x)) if with_height else logits

    def forward_all(
        self, x: Tensor, thresholds: ThresholdsLike | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``(logits, canopy height [B, 1, H, W] in metres or None)`` from one pass."""
        out: tuple[Tensor, Tensor | None] = self(x, thresholds, with_height=True)
        return out
