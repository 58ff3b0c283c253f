"""Model registry: ``build_model(name, **args)`` and ``available_models()``.

Built-in models are listed by import path, so listing names does not import torch. Other
code can add models with :func:`register_model`. Unknown names and unknown arguments raise
:class:`~engine.errors.ConfigError` listing the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.models.base import GapModel

DEFAULT_MODEL = "unet"

_BUILTIN: dict[str, str] = {
    "unet": "engine.models.unet:UNet",
    "resunet_attention": "engine.models.unet:ResUNetAttention",
    "film_unet": "engine.models.film_unet:FiLMUNet",
    "deeplab_lite": "engine.models.deeplab:DeepLabLite",
}
_EXTRA: dict[str, Callable[..., GapModel]] = {}


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted({*_BUILTIN, *_EXTRA})


def register_model(name: str) -> Callable[[Callable[..., GapModel]], Callable[..., GapModel]]:
    """Decorator adding a model class (or builder function) under ``name``."""

    def deco(builder: Callable[..., GapModel]) -> Callable[..., GapModel]:
        if name in _BUILTIN or name in _EXTRA:
            raise ConfigError(f"A model named {name!r} is already registered.")
        _EXTRA[name] = builder
        return builder

    return deco


def get_builder(name: str) -> Callable[..., GapModel]:
    """The class or function that builds model ``name``."""
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in _BUILTIN:
        raise ConfigError(f"Unknown model {name!r}; valid models: {', '.join(available_models())}.")
    module, attr = _BUILTIN[name].split(":")
    builder: Callable[..., GapModel] = getattr(importlib.import_module(module), attr)
    return builder


def model_arguments(name: str) -> dict[str, Any]:
    """Argument names of model ``name`` and defaults (``inspect.Parameter.empty`` if none)."""
    sig = inspect.signature(get_builder(name))
    return {k: p.default for k, p in sig.parameters.items() if p.kind is not p.VAR_KEYWORD}


def _plain(value: Any) -> Any:
    """JSON-friendly copy (tuples -> lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def build_model(name: str = DEFAULT_MODEL, **args: Any) -> GapModel:
    """Build model ``name`` with ``args``; records ``model.name`` and the full ``model.args``."""
    from engine.models.thresholds import as_threshold_list

    builder = get_builder(name)
    sig = inspect.signature(builder)
    valid = [k for k, p in sig.parameters.items() if p.kind is not p.VAR_KEYWORD]
    unknown = sorted(set(args) - set(valid))
    if unknown:
        raise ConfigError(
            f"Unknown argument(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"valid arguments: {', '.join(valid)}."
        )
    if "thresholds" in args and args["thresholds"] is not None:
        args = {**args, "thresholds": as_threshold_list(args["thresholds"])}
    try:
        bound = sig.bind(**args)
    except TypeError as exc:
        raise ConfigError(f"Bad arguments for model {name!r}: {exc}.") from None
    bound.apply_defaults()
    try:
        model = builder(**bound.arguments)
    except TypeError as exc:
        raise ConfigError(f"Bad arguments for model {name!r}: {exc}.") from None
    model.name = name
    model.args = _plain(dict(bound.arguments))
    if "thresholds" in model.args:
        model.args["thresholds"] = as_threshold_list(model.args["thresholds"])
    return model
