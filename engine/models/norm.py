"""Adaptive normalisation: BatchNorm for large batches, GroupNorm for small ones.

BatchNorm statistics are noisy (and wrong at inference) when a GPU sees only a few tiles per
step; GroupNorm does not depend on the batch. :func:`choose_norm` picks one by batch size,
:func:`make_norm` builds the layer and :func:`convert_norms` switches an existing model
(copying the affine parameters), e.g. when the trainer learns the real per-device batch size.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from engine.errors import ConfigError

NormKind = Literal["batch", "group"]
NORM_KINDS: tuple[str, ...] = ("batch", "group")
DEFAULT_THRESHOLD = 8


def choose_norm(batch_size: int, threshold: int = DEFAULT_THRESHOLD) -> NormKind:
    """``"batch"`` when ``batch_size >= threshold``, else ``"group"``."""
    return "batch" if batch_size >= threshold else "group"


def group_count(channels: int, max_groups: int = 8) -> int:
    """Largest number of groups ``<= max_groups`` that divides ``channels``."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def norm_layer(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer of ``kind`` (``"batch"`` or ``"group"``)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    raise ConfigError(f"Unknown norm {kind!r}; valid norms: {', '.join(NORM_KINDS)}.")


def make_norm(channels: int, batch_size: int, threshold: int = DEFAULT_THRESHOLD) -> nn.Module:
    """BatchNorm2d for ``batch_size >= threshold``, GroupNorm otherwise (AdaptiveNorm)."""
    return norm_layer(choose_norm(batch_size, threshold), channels)


AdaptiveNorm = make_norm
"""Alias: ``AdaptiveNorm(channels, batch_size)`` builds the layer suited to the batch size."""


def _convert(module: nn.Module, kind: str) -> nn.Module:
    if kind == "group" and isinstance(module, nn.BatchNorm2d):
        new: nn.Module = norm_layer("group", module.num_features)
    elif kind == "batch" and isinstance(module, nn.GroupNorm):
        new = norm_layer("batch", module.num_channels)
    else:
        return module
    old_w, old_b = getattr(module, "weight", None), getattr(module, "bias", None)
    if old_w is not None and getattr(new, "weight", None) is not None:
        new.weight.data.copy_(old_w.data)  # type: ignore[operator]
    if old_b is not None and getattr(new, "bias", None) is not None:
        new.bias.data.copy_(old_b.data)  # type: ignore[operator]
    new.train(module.training)
    p = next(module.parameters(), None)
    return new.to(p.device) if p is not None else new


def convert_norms(
    model: nn.Module,
    batch_size: int | None = None,
    kind: str | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> nn.Module:
    """Switch every BatchNorm2d/GroupNorm of ``model`` (in place) to the kind for ``batch_size``.

    Give either ``batch_size`` (kind chosen by :func:`choose_norm`) or ``kind`` directly.
    A model built by the registry records the new kind in ``model.args["norm"]`` so that its
    model file rebuilds the same layers.
    """
    if kind is None:
        if batch_size is None:
            raise ConfigError("convert_norms needs a batch_size or a kind.")
        kind = choose_norm(batch_size, threshold)
    if kind not in NORM_KINDS:
        raise ConfigError(f"Unknown norm {kind!r}; valid norms: {', '.join(NORM_KINDS)}.")
    for name, child in list(model.named_children()):
        new = _convert(child, kind)
        if new is not child:
            setattr(model, name, new)
        else:
            convert_norms(child, kind=kind)
    args = getattr(model, "args", None)
    if isinstance(args, dict) and "norm" in args:
        args["norm"] = kind
    return model
