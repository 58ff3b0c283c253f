"""Segmentation heads: features ``[B, C, H, W]`` -> logits ``[B, T, H, W]``, one per threshold.

- ``cumulative`` (default): ``logit_k = logit_0 + sum_{1<=j<=k} softplus(delta_j)`` over
  thresholds sorted ascending, so ``P(gap <= t)`` grows with ``t``: nested by construction.
- ``independent``: one 1x1 conv channel per threshold; nesting is left to learning.
- ``height``: regress a canopy height map ``h`` (metres) and set
  ``logit_k = (t_k - h) / temperature``: nested too, and valid at any threshold.
- ``residual_height``: like ``height``, but ``h = input_scale * x[:, 0] + correction``: the
  normalised DSM (height above the local low surface, in units of ``input_scale`` metres) plus a
  learned correction that starts at zero. At initialisation the model is exactly the rule
  "gap where DSM - low surface <= t"; training learns where that rule is wrong (canopy over
  low ground, slopes, pits). Nested, valid at any threshold.
- ``ground_residual``: for models fed feature channels (:mod:`engine.features.spec`) that hold
  the adaptive classical method's height above ground per threshold:
  ``logit_k = (t_k - h_k) / temperature_k + correction_k`` with ``h_k`` that channel (metres),
  plus a canopy height ``h = h_height + correction_h``. Corrections start at zero, so the
  untrained model *is* the adaptive classical method; training learns where it is wrong. Not
  nested by construction (nor is the classical method); only its own thresholds. With an
  ``openness_channel`` the corrections are gated: zero where the forest is more closed than
  ``openness_floor`` (a low percentile of the training pixels' openness), full at twice that
  (one floor for all thresholds, or one per threshold: the canopy height's correction then
  takes the largest); and bounded to ``max_correction`` (3 logits, about 3 m at the initial
  temperature).
  Out of the training distribution (near-gapless closed canopy) the model *is* the classical
  method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.models.thresholds import match_thresholds

HEAD_KINDS: tuple[str, ...] = (
    "cumulative",
    "independent",
    "height",
    "residual_height",
    "ground_residual",
)


def nested(logits: Tensor) -> Tensor:
    """Running maximum of ``logits [B, T, H, W]`` over ascending thresholds: a pixel that is a
    gap at one threshold is a gap at every higher one (as the reference labels are). A loop of
    ``maximum`` over the few channels, which ONNX exports (``cummax`` it does not)."""
    channels = [logits[:, :1]]
    for k in range(1, logits.shape[1]):
        channels.append(torch.maximum(channels[-1], logits[:, k : k + 1]))
    return torch.cat(channels, dim=1)


class Head(nn.Module):
    """Base head: keeps the thresholds it was built for (ascending) as a buffer."""

    output_kind = "independent"
    conditioned = False
    needs_input = False  # True: forward also takes the model input ``x``
    thresholds: Tensor

    def __init__(self, thresholds: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer(
            "thresholds", torch.tensor(list(thresholds), dtype=torch.float32), persistent=False
        )

    @property
    def threshold_list(self) -> list[float]:
        """The built thresholds as floats."""
        return [float(v) for v in self.thresholds.tolist()]

    def height(self, features: Tensor, x: Tensor | None = None) -> Tensor | None:
        """Canopy height ``[B, 1, H, W]`` in metres, for heads that estimate one (else None)."""
        return None

    def select(self, logits: Tensor, thresholds: Tensor | None) -> Tensor:
        """Channels of ``logits`` for the requested ``thresholds`` (all when None)."""
        if thresholds is None:
            return logits
        idx = match_thresholds(thresholds, self.threshold_list)
        return logits if idx is None else logits[:, idx]


class IndependentHead(Head):
    """One logit channel per threshold, no constraint between thresholds."""

    output_kind = "independent"

    def __init__(self, in_channels: int, thresholds: Sequence[float]) -> None:
        super().__init__(thresholds)
        self.conv = nn.Conv2d(in_channels, len(thresholds), 1)

    def forward(self, features: Tensor, thresholds: Tensor | None = None) -> Tensor:
        return self.select(self.conv(features), thresholds)


class CumulativeHead(Head):
    """Ordinal head: logits increase with the threshold, so gap masks are nested."""

    output_kind = "cumulative"

    def __init__(self, in_channels: int, thresholds: Sequence[float]) -> None:
        super().__init__(thresholds)
        self.conv = nn.Conv2d(in_channels, len(thresholds), 1)

    def forward(self, features: Tensor, thresholds: Tensor | None = None) -> Tensor:
        raw = self.conv(features)
        base, deltas = raw[:, :1], raw[:, 1:]
        logits = torch.cat([base, base + torch.cumsum(F.softplus(deltas), dim=1)], dim=1)
        return self.select(logits, thresholds)


class HeightHead(Head):
    """Regress height ``h`` (metres); ``logit(t) = (t - h) / temperature`` for any ``t``."""

    output_kind = "height"
    conditioned = True

    def __init__(
        self,
        in_channels: int,
        thresholds: Sequence[float],
        height_scale_m: float = 10.0,
        temperature_m: float = 1.0,
    ) -> None:
        super().__init__(thresholds)
        self.conv = nn.Conv2d(in_channels, 1, 1)
        self.height_scale_m = float(height_scale_m)
        nn.init.constant_(self.conv.bias, 1.0)  # type: ignore[arg-type]  # start near 10 m, a typical canopy height
        # softplus(raw) = temperature_m at init
        raw = torch.log(torch.expm1(torch.tensor(float(temperature_m))))
        self.raw_temperature = nn.Parameter(raw.reshape(1))

    def height(self, features: Tensor, x: Tensor | None = None) -> Tensor:
        """Predicted canopy height ``[B, 1, H, W]`` in metres."""
        return self.conv(features) * self.height_scale_m

    def temperature(self) -> Tensor:
        """Positive temperature (metres) of the logistic link."""
        return F.softplus(self.raw_temperature) + 1e-3

    def forward(self, features: Tensor, thresholds: Tensor | None = None) -> Tensor:
        t = self.thresholds if thresholds is None else thresholds.to(features.dtype).reshape(-1)
        return (t.reshape(1, -1, 1, 1) - self.height(features)) / self.temperature()


class ResidualHeightHead(HeightHead):
    """Height = input height (``input_scale * x[:, 0]``, metres) + a learned correction."""

    needs_input = True

    def __init__(
        self, in_channels: int, thresholds: Sequence[float], input_scale_m: float = 10.0
    ) -> None:
        super().__init__(in_channels, thresholds)
        self.input_scale_m = float(input_scale_m)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]

    def forward(  # type: ignore[override]
        self, features: Tensor, thresholds: Tensor | None = None, x: Tensor | None = None
    ) -> Tensor:
        if x is None:
            raise ValueError("ResidualHeightHead needs the model input x.")
        # Heights are compared with thresholds in metres: do this 1x1 head in fp32 even under
        # bf16/fp16 autocast (bf16 alone flipped ~0.1 % of gap pixels at 2 m).
        with torch.autocast(features.device.type, enabled=False):
            t = self.thresholds if thresholds is None else thresholds.float().reshape(-1)
            return (t.reshape(1, -1, 1, 1) - self.height(features, x)) / self.temperature()

    def height(self, features: Tensor, x: Tensor | None = None) -> Tensor:
        """Input height plus the learned correction ``[B, 1, H, W]`` (metres, fp32)."""
        if x is None:
            raise ValueError("ResidualHeightHead needs the model input x.")
        with torch.autocast(features.device.type, enabled=False):
            correction = self.conv(features.float()) * self.height_scale_m
            return x[:, :1].float() * self.input_scale_m + correction


class GroundResidualHead(Head):
    """Corrections to the adaptive classical method (see the module docstring)."""

    output_kind = "independent"
    needs_input = True
    floors: Tensor  # guard floor of each correction channel, [1, T + 1, 1, 1] (a buffer)

    def __init__(
        self,
        in_channels: int,
        thresholds: Sequence[float],
        base_channels: Sequence[int],
        height_channel: int,
        input_scale_m: float = 10.0,
        temperature_m: float = 1.0,
        openness_channel: int | None = None,
        openness_floor: float | Sequence[float] = 0.0,
        max_correction: float = 3.0,
    ) -> None:
        super().__init__(thresholds)
        if len(base_channels) != len(thresholds):
            raise ConfigError("ground_residual: give one base channel per threshold.")
        self.base_channels = [int(c) for c in base_channels]
        self.height_channel = int(height_channel)
        self.openness_channel = None if openness_channel is None else int(openness_channel)
        self.openness_floor = openness_floor  # as given: one value, or one per threshold
        floors = _floors(openness_floor, len(thresholds))
        self.guarded = self.openness_channel is not None and max(floors) > 0
        # per correction channel; a model setting, not a weight: kept out of the state dict
        self.register_buffer("floors", torch.tensor(floors).reshape(1, -1, 1, 1), persistent=False)
        self.max_correction = float(max_correction)
        self.input_scale_m = float(input_scale_m)
        self.conv = nn.Conv2d(in_channels, len(thresholds) + 1, 1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]
        raw = torch.log(torch.expm1(torch.tensor(float(temperature_m))))
        self.raw_temperature = nn.Parameter(raw.repeat(len(thresholds)))

    def _corrections(self, features: Tensor, x: Tensor) -> Tensor:
        corr = self.conv(features.float())
        if self.max_correction > 0:  # a few metres at most: the classical answer stays in reach
            corr = self.max_correction * torch.tanh(corr / self.max_correction)
        if not self.guarded or self.openness_channel is None:
            return corr
        ratio = x[:, self.openness_channel : self.openness_channel + 1].float()
        guarded = self.floors > 0  # a floor of 0: that correction is never switched off
        gate = (ratio / torch.where(guarded, self.floors, 1.0) - 1.0).clamp(0.0, 1.0)
        return corr * torch.where(guarded, gate, 1.0)

    def forward(
        self, features: Tensor, thresholds: Tensor | None = None, x: Tensor | None = None
    ) -> Tensor:
        if x is None:
            raise ValueError("GroundResidualHead needs the model input x.")
        # compared with thresholds in metres: fp32 even under autocast (see ResidualHeightHead)
        with torch.autocast(features.device.type, enabled=False):
            base = x[:, self.base_channels].float() * self.input_scale_m
            t = self.thresholds.reshape(1, -1, 1, 1)
            temperature = (F.softplus(self.raw_temperature) + 1e-3).reshape(1, -1, 1, 1)
            corr = self._corrections(features, x)[:, : len(self.base_channels)]
            logits = nested((t - base) / temperature + corr)
        return self.select(logits, thresholds)

    def height(self, features: Tensor, x: Tensor | None = None) -> Tensor:
        """Adaptive height of the height channel plus a learned correction (metres, fp32)."""
        if x is None:
            raise ValueError("GroundResidualHead needs the model input x.")
        with torch.autocast(features.device.type, enabled=False):
            base = x[:, self.height_channel : self.height_channel + 1].float()
            corr = self._corrections(features, x)[:, -1:]
            return (base + corr) * self.input_scale_m


def _floors(floor: float | Sequence[float], n: int) -> list[float]:
    """Guard floors of the ``n`` threshold corrections and, last, of the height correction."""
    floors = [float(floor)] * n if isinstance(floor, (int, float)) else [float(f) for f in floor]
    if len(floors) != n or not all(0.0 <= f <= 1.0 for f in floors):
        raise ConfigError(
            f"ground_residual: openness_floor must be one value in 0-1 or {n} of them (one per "
            f"threshold), got {floor!r}."
        )
    return [*floors, max(floors)]


def make_head(kind: str, in_channels: int, thresholds: Sequence[float], **head_args: Any) -> Head:
    """Build a head by name; an unknown name lists the valid ones.

    ``head_args`` go to heads that take arguments (``ground_residual``: ``base_channels``,
    ``height_channel``)."""
    if kind == "cumulative":
        return CumulativeHead(in_channels, thresholds)
    if kind == "independent":
        return IndependentHead(in_channels, thresholds)
    if kind == "height":
        return HeightHead(in_channels, thresholds)
    if kind == "residual_height":
        return ResidualHeightHead(in_channels, thresholds)
    if kind == "ground_residual":
        if "base_channels" not in head_args or "height_channel" not in head_args:
            raise ConfigError(
                "The ground_residual head needs head_args base_channels and height_channel "
                "(set by training from the dataset's feature channels)."
            )
        return GroundResidualHead(in_channels, thresholds, **head_args)
    raise ConfigError(f"Unknown head {kind!r}; valid heads: {', '.join(HEAD_KINDS)}.")
