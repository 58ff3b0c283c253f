"""Gap models: registry, building blocks, model files (safetensors + JSON) and ONNX export.

``build_model(name, **args)`` builds ``unet`` (default, nested cumulative head),
``resunet_attention``, ``film_unet`` (threshold-conditioned) or ``deeplab_lite``. Every model
maps ``x[B, C, H, W]`` and ``thresholds[T]`` (metres) to logits ``[B, T, H, W]``.

Names are imported lazily, so ``import engine.models`` (and ``ModelConfig``) does not import
torch; the torch-based parts load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.models.base import GapModel
    from engine.models.config import ModelConfig, RegularisationConfig
    from engine.models.modelfile import ModelDescription, load_model, read_description, save_model
    from engine.models.nesting import nesting_violation_rate
    from engine.models.registry import available_models, build_model, register_model

_EXPORTS = {
    "GapModel": "engine.models.base",
    "ModelConfig": "engine.models.config",
    "RegularisationConfig": "engine.models.config",
    "ModelDescription": "engine.models.modelfile",
    "load_model": "engine.models.modelfile",
    "read_description": "engine.models.modelfile",
    "save_model": "engine.models.modelfile",
    "nesting_violation_rate": "engine.models.nesting",
    "available_models": "engine.models.registry",
    "build_model": "engine.models.registry",
    "register_model": "engine.models.registry",
}

__all__ = [
    "GapModel",
    "ModelConfig",
    "ModelDescription",
    "RegularisationConfig",
    "available_models",
    "build_model",
    "load_model",
    "nesting_violation_rate",
    "read_description",
    "register_model",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine.models' has no attribute {name!r}")
