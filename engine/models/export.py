"""``canopygaps export``: a model file to ONNX, checked against torch.

Inputs: ``input`` float32 ``[batch, channels, height, width]`` (normalised DSM, height and
width multiples of ``2**depth``) and, for threshold-conditioned models only, ``thresholds``
float32 ``[T]`` in metres. Output: ``logits`` ``[batch, T, height, width]``. Fixed-threshold
models have their thresholds baked in (listed in the metadata). The model description JSON is
stored in the ONNX ``metadata_props`` under ``canopygaps``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.errors import ConfigError, EngineError, require
from engine.events import Reporter
from engine.io.files import atomic_path
from engine.models.config import ExportConfig
from engine.models.modelfile import METADATA_KEY, ModelDescription, load_model


def _estimates_height(model: nn.Module) -> bool:
    return bool(getattr(model, "estimates_height", False))


class _Fixed(nn.Module):
    """``x -> logits`` (and ``height``) at the model's own thresholds (baked into the graph)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Any:
        if _estimates_height(self.model):
            return self.model(x, None, with_height=True)
        return self.model(x)


class _Conditioned(nn.Module):
    """``(x, thresholds) -> logits`` (and ``height``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, thresholds: Tensor) -> Any:
        if _estimates_height(self.model):
            return self.model(x, thresholds, with_height=True)
        return self.model(x, thresholds)


def export_onnx(
    model: nn.Module, path: Path, description: ModelDescription, tile_size: int, opset: int = 17
) -> list[str]:
    """Write ``model`` to ONNX at ``path`` (dynamic batch/H/W axes); returns the input names."""
    onnx = require("onnx", "ONNX export", "onnx")
    was_training = model.training
    model = model.eval()
    conditioned = bool(getattr(model, "conditioned", False))
    x = torch.zeros(1, int(getattr(model, "in_channels", 1)), tile_size, tile_size)
    dyn: dict[str, dict[int, str]] = {"input": {0: "batch", 2: "height", 3: "width"}}
    dyn["logits"] = {0: "batch", 2: "height", 3: "width"}
    outputs = ["logits"]
    if _estimates_height(model):
        outputs.append("height")
        dyn["height"] = {0: "batch", 2: "height", 3: "width"}
    if conditioned:
        wrapper: nn.Module = _Conditioned(model)
        args: tuple[Tensor, ...] = (x, torch.tensor(description.thresholds, dtype=torch.float32))
        names = ["input", "thresholds"]
        dyn["thresholds"] = {0: "thresholds"}
        dyn["logits"][1] = "thresholds"
    else:
        wrapper, args, names = _Fixed(model), (x,), ["input"]
    # A fresh wrapper is in training mode; torch.onnx.export restores the wrapper's mode after
    # exporting, which would leave ``model`` training (BatchNorm then overwrites its statistics).
    wrapper.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=outputs,
            dynamic_axes=dyn,
            opset_version=opset,
            do_constant_folding=True,
        )
    model.train(was_training)
    proto = onnx.load(str(path))  # type: ignore[attr-defined]
    meta = {
        METADATA_KEY: description.to_json(),
        "thresholds": ",".join(f"{t:g}" for t in description.thresholds),
        "conditioned": json.dumps(conditioned),
        "output_kind": description.output_kind,
    }
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "canopygaps"
    onnx.checker.check_model(proto)  # type: ignore[attr-defined]
    onnx.save(proto, str(path))  # type: ignore[attr-defined]
    return names


def compare_onnx(
    model: nn.Module, path: Path, description: ModelDescription, tile_size: int, seed: int = 0
) -> float | None:
    """Max |ONNX Runtime - torch| of logits on 2 random tiles; None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, int(getattr(model, "in_channels", 1)), tile_size, tile_size, generator=gen)
    feeds: dict[str, np.ndarray] = {"input": x.numpy()}
    thresholds = torch.tensor(description.thresholds, dtype=torch.float32)
    if getattr(model, "conditioned", False):
        feeds["thresholds"] = thresholds.numpy()
    with torch.no_grad():
        expected = model.eval()(x, thresholds if "thresholds" in feeds else None).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], feeds)
    return float(np.max(np.abs(np.asarray(got) - expected)))


def run_export(config: ExportConfig, reporter: Reporter) -> dict[str, Any]:
    """Export ``config.model`` to ONNX; checked with onnx.checker and (if present) ONNX Runtime."""
    reporter.progress(0.0, "load model")
    model, desc = load_model(config.model)
    depth = int(getattr(model, "depth", 0))
    tile = config.tile_size or desc.tile_size or 256
    if tile % 2**depth:
        raise ConfigError(
            f"Config key 'tile_size' = {tile}: must be a multiple of {2**depth} for this model.",
        )
    output = config.output or Path(config.model).with_suffix(".onnx")
    diff: float | None = None
    with atomic_path(output) as tmp:
        reporter.progress(0.1, "export")
        names = export_onnx(model, tmp, desc, tile, config.opset)
        reporter.progress(0.7, "check")
        if config.check:
            diff = compare_onnx(model, tmp, desc, tile)
            if diff is not None and diff > config.tolerance:
                raise EngineError(
                    f"The ONNX model differs from the torch model by up to {diff:.3g} "
                    f"(tolerance {config.tolerance:g}).",
                    "Try another opset, or report the problem with the model file.",
                )
            reporter.log(
                "ONNX Runtime not installed: the export was not compared with torch."
                if diff is None
                else f"ONNX Runtime matches torch (max |diff| = {diff:.2g}).",
                "warning" if diff is None else "info",
            )
    reporter.progress(1.0, "done")
    return {
        "output": str(output),
        "inputs": names,
        "outputs": ["logits"],
        "thresholds": desc.thresholds,
        "conditioned": "thresholds" in names,
        "opset": config.opset,
        "max_abs_diff": diff,
    }
