"""Composite regularisation: dropout, stochastic depth, spectral norm and weight decay groups.

:func:`apply_regularisation` changes a built model in place according to a
:class:`RegularisationConfig`; :func:`param_groups` gives optimiser parameter groups where
weight decay applies to conv/linear weights only (not to norms, biases or scalars).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from engine.models.config import RegularisationConfig
from engine.models.droppath import DropPath

__all__ = [
    "RegularisationConfig",
    "apply_regularisation",
    "apply_spectral_norm",
    "param_groups",
    "plain_state_dict",
    "remove_parametrizations",
    "set_drop_path",
    "set_dropout",
]

_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
_DROPOUTS = (nn.Dropout, nn.Dropout2d)


def set_dropout(model: nn.Module, rate: float) -> int:
    """Set the rate of every dropout layer; returns how many there are."""
    layers = [m for m in model.modules() if isinstance(m, _DROPOUTS)]
    for m in layers:
        m.p = float(rate)
    return len(layers)


def set_drop_path(model: nn.Module, rate: float) -> int:
    """Stochastic depth rising linearly from 0 to ``rate`` over the DropPath layers, in order."""
    layers = [m for m in model.modules() if isinstance(m, DropPath)]
    for i, m in enumerate(layers):
        m.drop_prob = rate * i / max(1, len(layers) - 1)
    return len(layers)


def apply_spectral_norm(model: nn.Module) -> int:
    """Spectral normalisation (one power iteration per step) on every Conv2d; returns the count."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        if not parametrize.is_parametrized(conv, "weight"):
            spectral_norm(conv)
    return len(convs)


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``state_dict`` with parametrized weights (spectral norm) baked into plain tensors.

    The model is left untouched (no power iteration is run), so it can keep training. Keys are
    those of the same model without parametrizations.
    """
    out = {k: v for k, v in model.state_dict().items() if "parametrizations." not in k}
    for prefix, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        plist = module.parametrizations  # type: ignore[union-attr]
        was_training = plist.training
        plist.eval()
        try:
            with torch.no_grad():
                for name in list(plist):  # type: ignore[call-overload]
                    out[f"{prefix}.{name}" if prefix else name] = getattr(module, name).detach()
        finally:
            plist.train(was_training)
    return out


def remove_parametrizations(model: nn.Module) -> nn.Module:
    """Bake parametrizations (e.g. spectral norm) into plain weights, in place.

    Do not call this on a ``copy.deepcopy`` of a parametrized model: the copy shares the
    parametrized class with the original and would break it (use :func:`plain_state_dict`).
    """
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):  # type: ignore[union-attr,operator]
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def apply_regularisation(model: nn.Module, config: RegularisationConfig) -> dict[str, Any]:
    """Apply dropout, drop path and spectral norm from ``config``; returns what changed.

    Weight decay is applied by the optimiser: use :func:`param_groups`. The model's recorded
    ``args`` are updated for dropout/drop_path so model files describe the trained model.
    """
    summary: dict[str, Any] = {"weight_decay": config.weight_decay}
    args = getattr(model, "args", None)
    if config.dropout is not None:
        summary["dropout_layers"] = set_dropout(model, config.dropout)
        if isinstance(args, dict) and "dropout" in args:
            args["dropout"] = config.dropout
    if config.drop_path is not None:
        summary["drop_path_layers"] = set_drop_path(model, config.drop_path)
        if isinstance(args, dict) and "drop_path" in args:
            args["drop_path"] = config.drop_path
    if config.spectral_norm:
        summary["spectral_norm_layers"] = apply_spectral_norm(model)
    return summary


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: decayed conv/linear weights, and undecayed norms/biases/scalars."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, _NORMS) or param.ndim <= 1 or name.endswith("bias"):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
