"""One engine request in, one result out.

A request is ``{"command": name, "params": {...}}``. The CLI, the QGIS plugin's in-process
backend and the subprocess/Docker backends (``canopygaps request``) all go through :func:`run`,
so every front end gets the same validation, errors, progress and cancel behaviour.

Each command lives in its own module and exposes a config dataclass (``engine.config.Config``)
and ``run(config, reporter) -> dict``. Modules are imported lazily: importing this module does
not import torch or rasterio.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from engine.config.base import Config, from_dict
from engine.errors import ConfigError
from engine.events import NullReporter, Reporter, forward_logs

REQUEST_VERSION = 1


@dataclass(frozen=True)
class CommandSpec:
    """Where a command's config class and run function live."""

    module: str
    config: str
    function: str
    summary: str

    def load(self) -> tuple[type[Config], Any]:
        """Import the module; return (config class, run function)."""
        mod = importlib.import_module(self.module)
        return getattr(mod, self.config), getattr(mod, self.function)


COMMANDS: dict[str, CommandSpec] = {
    "synth": CommandSpec(
        "engine.data.synthetic",
        "SynthConfig",
        "run_synth",
        "Write a seeded synthetic forest scene (DSM, DTM, CHM) with gaps of known size.",
    ),
    "preprocess": CommandSpec(
        "engine.data.preprocess",
        "PreprocessConfig",
        "run_preprocess",
        "Build a training dataset (tiles, gap labels per threshold, split, manifest) from DSMs "
        "plus CHMs or DTMs.",
    ),
    "train": CommandSpec(
        "engine.training.command",
        "TrainConfig",
        "run_train",
        "Train a gap model on a dataset; writes a model file (safetensors + JSON description).",
    ),
    "infer": CommandSpec(
        "engine.inference.command",
        "InferConfig",
        "run_infer",
        "Predict gap masks at several height thresholds for DSMs of any size.",
    ),
    "classical": CommandSpec(
        "engine.inference.classical",
        "ClassicalConfig",
        "run_classical",
        "Gap masks without a model: DSM minus a ground estimate (adaptive, or ref21), thresholded.",
    ),
    "evaluate": CommandSpec(
        "engine.evaluation.command",
        "EvaluateConfig",
        "run_evaluate",
        "Compare gap masks with a reference CHM or DTM: metrics per threshold and a report.",
    ),
    "recipe": CommandSpec(
        "engine.recipe.command",
        "RecipeConfig",
        "run_recipe",
        "Tune the classical method, preprocess, train and evaluate on held-out sites in one run "
        "(resumable): the default model's recipe.",
    ),
    "crossval": CommandSpec(
        "engine.recipe.command",
        "CrossvalConfig",
        "run_crossval",
        "Leave-one-site-out cross-validation of the recipe: model vs classical vs ref21 per site "
        "and threshold.",
    ),
    "export": CommandSpec(
        "engine.models.export",
        "ExportConfig",
        "run_export",
        "Export a model file to ONNX.",
    ),
    "diagnostics": CommandSpec(
        "engine.diagnostics",
        "DiagnosticsConfig",
        "run_diagnostics",
        "Report versions of Python, GDAL, rasterio, torch, CUDA and the compute devices.",
    ),
}


def get_command(name: str) -> CommandSpec:
    """The spec of command ``name``; an unknown name lists the valid ones."""
    try:
        return COMMANDS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown engine command {name!r}; valid commands: {', '.join(sorted(COMMANDS))}."
        ) from None


def build_config(command: str, params: dict[str, Any]) -> Config:
    """Validate ``params`` into the command's typed config."""
    config_cls, _ = get_command(command).load()
    return from_dict(config_cls, params)


def run(
    command: str, params: dict[str, Any] | Config, reporter: Reporter | None = None
) -> dict[str, Any]:
    """Run one engine command and return its JSON-serialisable result."""
    reporter = reporter or NullReporter()
    config_cls, function = get_command(command).load()
    config = params if isinstance(params, Config) else from_dict(config_cls, params)
    with forward_logs(reporter):
        result = function(config, reporter)
    return dict(result or {})


def run_request(request: dict[str, Any], reporter: Reporter | None = None) -> dict[str, Any]:
    """Run a request mapping ``{"command": ..., "params": {...}}``."""
    if not isinstance(request, dict) or "command" not in request:
        raise ConfigError("An engine request must be a mapping with a 'command' key.")
    version = request.get("version", REQUEST_VERSION)
    if version != REQUEST_VERSION:
        raise ConfigError(
            f"Engine request version {version} is not supported "
            f"(this engine speaks {REQUEST_VERSION}).",
            "Update the plugin and the engine to the same release.",
        )
    params = request.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"The request's 'params' must be a JSON object (key: value), got "
            f"{type(params).__name__} {json.dumps(params)[:80]}.",
            'Give the settings as {"params": {"dsm": "...", "output": "..."}}.',
        )
    return run(str(request["command"]), dict(params), reporter)
