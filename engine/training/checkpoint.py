"""Pickle-free training checkpoints: one safetensors file, tensors + JSON metadata.

Any nested state (model, optimizer, scheduler, scaler, RNG, trainer and callback states) is
split by :func:`flatten`: every tensor becomes a safetensors entry named by its path
(``optimizer/state/3/exp_avg``), everything else stays in a JSON document stored in the file's
header metadata (key ``canopygaps-checkpoint``). Dicts with non-string keys (optimizer state is
keyed by int) and tuples are encoded so :func:`unflatten` rebuilds them exactly; floats survive
JSON bit for bit (``repr`` round-trips, ``Infinity``/``NaN`` allowed).

The file is written to a temporary name, fsynced and renamed: a run killed at any moment (even
SIGKILL) leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from engine.errors import InputError
from engine.io.files import atomic_path

FORMAT = "canopygaps-checkpoint"
FORMAT_VERSION = 1
META_KEY = "canopygaps-checkpoint"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """JSON-able copy of ``obj``; tensors are moved into ``tensors`` under their path."""
    if isinstance(obj, torch.Tensor):
        key = path or "tensor"
        t = obj.detach().to("cpu")
        tensors[key] = t.contiguous().clone() if t.dim() else t.clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten(v, tensors, f"{path}/{k}" if path else k) for k, v in obj.items()}
        return {
            "__items__": [
                [k, flatten(v, tensors, f"{path}/{k}" if path else str(k))] for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    raise TypeError(f"Cannot store {type(obj).__name__} at '{path}' in a checkpoint.")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj and len(obj) == 1:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj and len(obj) == 1:
            return {k: unflatten(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj and len(obj) == 1:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts of tensors and plain data) atomically to ``path``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "state": flatten(state, tensors)}
    final = Path(path)
    with atomic_path(final) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(doc)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    return final


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on ``device``)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Checkpoint {path} does not exist.", "Check the run folder or start afresh."
        )
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        doc = json.loads(meta[META_KEY])
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(
            f"{path} is not a readable training checkpoint ({exc}).",
            "Delete it to start afresh, or point resume at another run folder.",
        ) from exc
    if doc.get("format") != FORMAT or int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"{path} is a checkpoint of an unsupported format ({doc.get('format')} "
            f"v{doc.get('format_version')}).",
            "Use the engine version that wrote it.",
        )
    state: dict[str, Any] = unflatten(doc["state"], tensors)
    return state
