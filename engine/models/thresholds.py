"""Height thresholds (metres): validation and matching a request to a model's thresholds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from engine.errors import ConfigError, InputError

DEFAULT_THRESHOLDS: tuple[float, ...] = (2.0, 5.0, 10.0, 15.0, 20.0)

ThresholdsLike = Tensor | Sequence[float]


def as_threshold_list(thresholds: Sequence[float] | Tensor) -> list[float]:
    """Thresholds as a sorted list of distinct finite floats; raise ConfigError otherwise."""
    values = thresholds.tolist() if isinstance(thresholds, Tensor) else list(thresholds)
    try:
        out = sorted(float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"Thresholds must be numbers in metres, got {values!r}.") from None
    if not out:
        raise ConfigError("A model needs at least one height threshold.")
    if any(not math.isfinite(v) for v in out):
        raise ConfigError(f"Thresholds must be finite numbers, got {values!r}.")
    if len(set(out)) != len(out):
        raise ConfigError(f"Thresholds must be distinct, got {values!r}.")
    return out


def to_tensor(thresholds: ThresholdsLike, like: Tensor) -> Tensor:
    """``thresholds`` as a 1-D float tensor on the device/dtype of ``like``."""
    t = torch.as_tensor(thresholds, dtype=like.dtype, device=like.device).reshape(-1)
    return t


def match_thresholds(
    requested: ThresholdsLike, built: Sequence[float], tol: float = 1e-4
) -> list[int] | None:
    """Indices of ``requested`` within ``built``; ``None`` when they are the same list.

    Raises :class:`InputError` for a threshold the model was not trained for.
    """
    req = (
        requested.detach().cpu().reshape(-1).tolist()
        if isinstance(requested, Tensor)
        else list(requested)
    )
    idx: list[int] = []
    for value in req:
        hits = [i for i, b in enumerate(built) if abs(b - float(value)) <= tol]
        if not hits:
            raise InputError(
                f"This model predicts gaps at {', '.join(f'{b:g}' for b in built)} m only, "
                f"not at {float(value):g} m.",
                "Pick thresholds from that list, or train a threshold-conditioned model "
                "(film_unet, or head 'height') to predict at any threshold.",
            )
        idx.append(hits[0])
    return None if idx == list(range(len(built))) else idx
