"""Model files: one ``.safetensors`` file (weights + JSON description), never a pickle.

The description lives in the safetensors header metadata under the key ``canopygaps`` (a JSON
string) and is repeated in a sidecar ``<stem>.json`` for people. Loading parses the header
ourselves (:mod:`engine.models.safetensors_file`: any corrupt or foreign file gets a clear
message), rebuilds the architecture from the registry and reads tensors with ``safetensors``
only: no ``torch.load``, no pickle, so a model file can never run code.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine import __version__
from engine.errors import ConfigError, ModelFileError
from engine.io.files import atomic_path, atomic_write_text
from engine.models.safetensors_file import check_finite, check_tensors, read_header

FORMAT = "canopygaps-model"
FORMAT_VERSION = 2  # 2: 'features' (input channels from engine.features); 1 had none
METADATA_KEY = "canopygaps"
SUFFIX = ".safetensors"


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, paths -> strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class ModelDescription:
    """Everything needed to use a model file: architecture, thresholds, input contract, history."""

    architecture: dict[str, Any]
    thresholds: list[float]
    in_channels: int = 1
    output_kind: str = "cumulative"
    conditioned: bool = False
    tile_size: int | None = None
    pixel_size: float | None = None
    normalisation: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    engine_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: nn.Module, **kwargs: Any) -> ModelDescription:
        """Description of a built ``model``; ``kwargs`` fill tile_size, normalisation, etc."""
        m = unwrap(model)
        return cls(
            architecture=copy.deepcopy(m.architecture),  # type: ignore[arg-type]
            thresholds=list(m.thresholds),  # type: ignore[arg-type]
            in_channels=int(m.in_channels),  # type: ignore[arg-type]
            output_kind=str(m.output_kind),
            conditioned=bool(m.conditioned),
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``extra`` keys are merged back at the top level)."""
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"
        }
        data = {"format": self.format, "format_version": self.format_version, **data}
        return _finite({**self.extra, **data})  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """The JSON text stored in the file header and the sidecar."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model file") -> ModelDescription:
        """Validate ``data``; raise :class:`ModelFileError` for a foreign, newer or broken one."""
        if not isinstance(data, dict):
            raise ModelFileError(f"The description in {source} is not a JSON object.")
        if data.get("format") != FORMAT:
            raise ModelFileError(
                f"{source} is not a canopygaps model (format {data.get('format')!r}).",
                "Use a model file written by 'canopygaps train'.",
            )
        version = data.get("format_version")
        if not isinstance(version, int):
            raise ModelFileError(f"{source} has no valid format_version.")
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source} uses model format version {version}, made by canopygaps "
                f"{data.get('engine_version', '?')}; this engine ({__version__}) reads up to "
                f"version {FORMAT_VERSION}.",
                "Update the canopygaps engine/plugin to open this model.",
            )
        arch = data.get("architecture")
        if not (
            isinstance(arch, dict)
            and isinstance(arch.get("name"), str)
            and isinstance(arch.get("args", {}), dict)
        ):
            raise ModelFileError(f"{source} has no valid 'architecture' {{name, args}} entry.")
        thresholds = data.get("thresholds")
        if not (
            isinstance(thresholds, list)
            and thresholds
            and all(isinstance(t, (int, float)) for t in thresholds)
        ):
            raise ModelFileError(f"{source} has no valid 'thresholds' list.")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        known["architecture"] = {"name": arch["name"], "args": dict(arch.get("args", {}))}
        known["thresholds"] = [float(t) for t in thresholds]
        try:
            return cls(**known, extra=extra)
        except TypeError as exc:  # pragma: no cover - defensive
            raise ModelFileError(f"{source} has a broken description: {exc}.") from None


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def sidecar_path(path: str | Path) -> Path:
    """``model.safetensors`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def read_description(path: str | Path) -> ModelDescription:
    """The :class:`ModelDescription` stored in a model file's header (no tensors are read)."""
    path = Path(path)
    header = read_header(path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or METADATA_KEY not in meta:
        raise ModelFileError(
            f"{path} is a safetensors file but not a canopygaps model "
            f"(no '{METADATA_KEY}' description).",
            "Weights from other projects cannot be used directly; "
            "train a model with 'canopygaps train'.",
        )
    try:
        data = json.loads(meta[METADATA_KEY])
    except (TypeError, json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"The description in {path} is not valid JSON ({exc}).", "Copy the file again."
        ) from None
    return ModelDescription.from_dict(data, source=str(path))


def update_head_args(path: str | Path, **head_args: Any) -> ModelDescription:
    """Set ``head_args`` in the architecture of the model file ``path`` (weights unchanged).

    For settings the head only reads at inference (the ``ground_residual`` guard's
    ``openness_floor``). The file and its sidecar are rewritten atomically; the new description
    is checked by building the model and loading the weights before anything is replaced.
    """
    from safetensors.torch import load_file

    path = Path(path)
    desc = read_description(path)
    args = dict(desc.architecture.get("args", {}))
    args["head_args"] = {**dict(args.get("head_args") or {}), **head_args}
    desc = dataclasses.replace(desc, architecture={**desc.architecture, "args": args})
    # the new arguments must build a model these weights fit: verify before replacing
    _write_file(path, load_file(str(path), device="cpu"), desc, verify=True)
    return desc


def _write_file(
    path: Path, tensors: dict[str, torch.Tensor], desc: ModelDescription, verify: bool = False
) -> None:
    """Weights and description to ``path`` and its sidecar, atomically; ``verify`` loads the
    written file before it replaces ``path``."""
    from safetensors.torch import save_file

    text = desc.to_json()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", METADATA_KEY: text})
        if verify:
            load_model(tmp)
    atomic_write_text(sidecar_path(path), text + "\n")


WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def save_model(
    path: str | Path,
    model: nn.Module,
    description: ModelDescription,
    weights_dtype: str = "float32",
) -> ModelDescription:
    """Write ``model`` + ``description`` to ``path`` (.safetensors) and ``<stem>.json``, atomically.

    Architecture, thresholds, in_channels and output kind are taken from the model itself, so
    the description always matches the weights. Parametrizations (spectral norm) are baked in.
    ``weights_dtype`` "float16"/"bfloat16" stores floating-point tensors at half size (shipped
    models); :func:`load_model` casts them back to the model's float32 parameters.
    Returns the description as written.
    """
    if weights_dtype not in WEIGHT_DTYPES:
        raise ModelFileError(
            f"Unknown weights_dtype {weights_dtype!r}; valid: {', '.join(WEIGHT_DTYPES)}."
        )
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        raise ModelFileError(
            f"Model file names must end with {SUFFIX}, got {path.name}.",
            f"Save as {path.with_suffix(SUFFIX).name}.",
        )
    from engine.models.regularisation import plain_state_dict

    m = unwrap(model)
    desc = dataclasses.replace(
        ModelDescription.from_model(m),
        tile_size=description.tile_size,
        pixel_size=description.pixel_size,
        normalisation=dict(description.normalisation),
        features=dict(description.features),
        training=dict(description.training),
        metrics=dict(description.metrics),
        extra=dict(description.extra),
    )
    dtype = WEIGHT_DTYPES[weights_dtype]
    tensors = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().to("cpu").contiguous().clone()
        for k, v in plain_state_dict(m).items()
    }
    _write_file(path, tensors, desc)
    return desc


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelDescription]:
    """Rebuild the model and load its weights; returns ``(model in eval mode, description)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from engine.models.registry import available_models, build_model

    path = Path(path)
    desc = read_description(path)
    name, args = desc.architecture["name"], desc.architecture.get("args", {})
    if name not in available_models():
        raise ModelFileError(
            f"{path} needs model architecture {name!r}, which this engine does not have "
            f"(available: {', '.join(available_models())}).",
            "Update the canopygaps engine/plugin.",
        )
    try:
        model = build_model(name, **args)
    except ConfigError as exc:
        raise ModelFileError(
            f"{path} describes a {name!r} model this engine cannot build: {exc.message}",
            "Update the canopygaps engine/plugin.",
        ) from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"Cannot read the weights in {path}: {exc}.", "Copy the model file again."
        ) from None
    check_tensors(path, tensors, model.state_dict())
    check_finite(path, tensors)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model.to(map_location), desc
