"""Run a gap model with onnxruntime (CPU): the ``runtime="onnxruntime"`` path of ``engine infer``.

Measured on a quiet AMD EPYC (2 threads, default U-Net, 512 px tiles): onnxruntime fp32 ran
1.30-1.49x faster than torch fp32 per forward pass (1.45x end to end at 1024² px), with logits
equal to torch fp32 within 1e-5; torch bf16 is faster still but not exact
(see :mod:`engine.inference.device`).
The ONNX graph is exported from the *loaded* model with
:func:`engine.models.export.export_onnx` (checked against torch on random tiles) and cached, so
later runs skip the export:

* folder ``$CANOPYGAPS_CACHE/onnx`` (default ``~/.cache/canopygaps/onnx``);
* file name ``<sha256 of the model file>-opset<N>-engine<version>.onnx``, written atomically;
* a cached file that onnxruntime cannot load, or whose stored model description differs from
  the model's, is exported again; a cache folder that cannot be written means a temporary
  export for this run only.

Only files this module wrote into that cache are ever loaded. :class:`OnnxPredictor` and the
torch :class:`engine.inference.predictor.Predictor` share the base
:class:`~engine.inference.predictor.TilePredictor` (timed ``__call__``, ``forward_seconds``,
``tiles``, ``choice``), so the streaming code does not care which runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine import __version__
from engine.data.tiling import fit_tile
from engine.errors import ConfigError, EngineError, MissingDependencyError
from engine.inference.device import DeviceChoice
from engine.inference.predictor import TilePredictor

RUNTIMES = ("auto", "torch", "onnxruntime")
OPSET = 17
CACHE_ENV = "CANOPYGAPS_CACHE"
EXPORT_TOLERANCE = 1e-3  # largest accepted |onnxruntime - torch| logit difference at export
INSTALL = "python -m pip install onnxruntime onnx"


def _installed(name: str) -> bool:
    """True when module ``name`` can be imported, without importing it (``onnx`` alone takes
    25 ms to import and is only needed to export)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def onnxruntime_available() -> bool:
    """True when both ``onnxruntime`` and ``onnx`` (needed to export) are installed."""
    return _installed("onnxruntime") and _installed("onnx")


def require_onnxruntime() -> None:
    """Raise :class:`MissingDependencyError` (with the pip command) without onnxruntime/onnx."""
    missing = [name for name in ("onnxruntime", "onnx") if not _installed(name)]
    if missing:
        raise MissingDependencyError(
            f"runtime 'onnxruntime' needs the Python package(s) {', '.join(missing)}, which "
            "are not installed.",
            f"Install them into the engine's Python ({INSTALL}), or use runtime 'torch'.",
        )


def resolve_runtime(requested: str, precision: str, choice: DeviceChoice) -> str:
    """The runtime a run uses: ``"torch"`` or ``"onnxruntime"``.

    ``auto`` takes onnxruntime on the CPU when it is installed and the precision is ``auto`` or
    ``fp32`` (onnxruntime runs fp32 only), else torch; CUDA devices always use torch. An
    explicit ``onnxruntime`` must be installed and needs the CPU and fp32/auto precision.
    """
    if requested not in RUNTIMES:
        raise ConfigError(f"Runtime {requested!r} is unknown; valid: {', '.join(RUNTIMES)}.")
    if requested == "torch":
        return "torch"
    if requested == "onnxruntime":
        require_onnxruntime()
        if choice.device != "cpu":
            raise ConfigError(
                f"runtime 'onnxruntime' runs on the CPU only (device {choice.device!r}).",
                "Use device 'cpu', or runtime 'torch' (or 'auto') on the GPU.",
            )
        if precision not in ("auto", "fp32"):
            raise ConfigError(
                f"runtime 'onnxruntime' computes in fp32 only (precision {precision!r}).",
                "Use precision 'auto' or 'fp32', or runtime 'torch' for bf16/fp16.",
            )
        return "onnxruntime"
    if choice.device != "cpu" or precision not in ("auto", "fp32"):
        return "torch"
    return "onnxruntime" if onnxruntime_available() else "torch"


def cache_dir() -> Path:
    """The ONNX cache folder: ``$CANOPYGAPS_CACHE/onnx`` or ``~/.cache/canopygaps/onnx``."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "canopygaps")
    return Path(root).expanduser() / "onnx"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_name(model_path: str | os.PathLike[str], opset: int = OPSET) -> str:
    """Cache file name of the ONNX export of a model file."""
    return f"{file_sha256(model_path)}-opset{opset}-engine{__version__}.onnx"


def _writable_dir(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _export_tile(model: Any, description: Any) -> int:
    return fit_tile(int(description.tile_size or 256), 2 ** int(getattr(model, "depth", 0)))


def export_checked(model: Any, description: Any, path: Path, opset: int = OPSET) -> float:
    """Export ``model`` to ``path`` (ONNX) and compare onnxruntime with torch on random tiles;
    returns the max |logit difference|. Raises :class:`EngineError` above the tolerance."""
    from engine.models.export import compare_onnx, export_onnx

    tile = _export_tile(model, description)
    export_onnx(model, path, description, tile, opset)
    diff = compare_onnx(model, path, description, tile)
    if diff is None:  # pragma: no cover - onnxruntime was checked before
        raise MissingDependencyError("onnxruntime is not installed.", INSTALL)
    if not diff <= EXPORT_TOLERANCE:
        raise EngineError(
            f"The ONNX export of this model differs from torch by up to {diff:.3g} "
            f"(tolerance {EXPORT_TOLERANCE:g}).",
            "Use runtime 'torch' for this model.",
        )
    return diff


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _matches(session: Any, description: Any) -> bool:
    """True when the session's graph was exported from a model with this description."""
    from engine.models.modelfile import METADATA_KEY

    meta = session.get_modelmeta().custom_metadata_map
    return bool(meta.get(METADATA_KEY) == description.to_json())


@dataclass
class _Exporter:
    """Finds or fills the cache entry of one model's ONNX graph and opens it; ``info`` records
    what happened (``onnx_cache_hit``, ``onnx_export_seconds``, ``onnx_cache``: the file, None
    for an export for this run only) and ``log(message, level)`` hears about it."""

    model: Any
    description: Any
    opset: int
    log: Any = None
    info: dict[str, Any] = field(
        default_factory=lambda: {"onnx_cache_hit": False, "onnx_export_seconds": None}
    )

    def say(self, message: str, level: str = "info") -> None:
        """Pass ``message`` to ``log`` when there is one."""
        if self.log is not None:
            self.log(message, level)

    def export(self, target: Path) -> None:
        """Export the model to ``target`` (checked against torch), timed."""
        t0 = time.perf_counter()
        diff = export_checked(self.model, self.description, target, self.opset)
        self.info["onnx_export_seconds"] = round(time.perf_counter() - t0, 3)
        self.say(
            f"onnxruntime: exported the model to ONNX in {self.info['onnx_export_seconds']} s "
            f"(max |onnx - torch| {diff:.2g})"
        )

    def for_this_run(self, reason: str, threads: int) -> Any:
        """A session of a temporary export, read before the temporary folder goes."""
        self.say(f"onnxruntime: {reason}; exporting for this run only", "warning")
        with tempfile.TemporaryDirectory(prefix="canopygaps-onnx-") as tmp:
            self.export(Path(tmp) / "model.onnx")
            session = _session(Path(tmp) / "model.onnx", threads)  # file read now
        self.info["onnx_cache"] = None
        return session

    def cached(self, path: Path, threads: int) -> Any | None:
        """The session of the cached graph at ``path`` when it is readable and this model's."""
        if not path.is_file():
            return None
        try:
            session = _session(path, threads)
        except Exception as exc:  # corrupt or truncated file: export again
            self.say(
                f"onnxruntime: cached {path.name} is unreadable ({type(exc).__name__}); "
                "exporting again",
                "warning",
            )
            return None
        if not _matches(session, self.description):
            self.say(
                f"onnxruntime: cached {path.name} is another model's; exporting again", "warning"
            )
            return None
        self.info["onnx_cache_hit"] = True
        self.say(f"onnxruntime: using the cached ONNX graph {path}")
        return session

    def session(self, model_path: str | os.PathLike[str], threads: int) -> Any:
        """The cached graph, else a new export written atomically into the cache, else (cache
        not writable) an export for this run only."""
        from engine.io.files import atomic_path

        folder = cache_dir()
        if not _writable_dir(folder):
            return self.for_this_run(f"cache folder {folder} is not writable", threads)
        path = folder / cache_name(model_path, self.opset)
        self.info["onnx_cache"] = str(path)
        session = self.cached(path, threads)
        if session is not None:
            return session
        try:
            with atomic_path(path) as part:
                self.export(part)
        except OSError as exc:  # disk full, permissions changed, ...
            return self.for_this_run(f"cannot write {path} ({exc})", threads)
        self.say(f"onnxruntime: cached the ONNX graph as {path}")
        return _session(path, threads)


class OnnxPredictor(TilePredictor):
    """A gap model run by onnxruntime (CPU, fp32); see :class:`TilePredictor`."""

    runtime = "onnxruntime"

    def __init__(
        self,
        session: Any,
        thresholds: Sequence[float],
        choice: DeviceChoice,
        channels: list[int] | None = None,
        info: dict[str, Any] | None = None,
        with_height: bool = False,
    ) -> None:
        super().__init__(replace(choice, precision="fp32"), channels, with_height, info)
        self.session = session
        outputs = [o.name for o in session.get_outputs()]
        if with_height and "height" not in outputs:
            raise EngineError("The ONNX graph of this model has no height output.")
        self.outputs = ["logits", "height"] if with_height else ["logits"]
        self.inputs = [i.name for i in session.get_inputs()]
        self.conditioned = "thresholds" in self.inputs
        self.thresholds = np.asarray(list(thresholds), dtype=np.float32)

    @classmethod
    def from_model(
        cls,
        model: Any,
        description: Any,
        model_path: str | os.PathLike[str],
        thresholds: Sequence[float],
        choice: DeviceChoice,
        channels: list[int] | None = None,
        log: Any = None,
        opset: int = OPSET,
        with_height: bool = False,
    ) -> OnnxPredictor:
        """Session for ``model`` (loaded from ``model_path``): the cached ONNX graph, exported
        first when missing, unreadable or from another model; ``log(message, level)``."""
        require_onnxruntime()
        exporter = _Exporter(model, description, opset, log)
        session = exporter.session(model_path, choice.threads)
        return cls(session, thresholds, choice, channels, exporter.info, with_height)

    def run(
        self, batch: NDArray[np.float32], choice: DeviceChoice | None = None
    ) -> NDArray[np.float32]:
        """One forward pass (fp32 whatever ``choice`` says; the argument mirrors Predictor)."""
        feeds = {"input": np.ascontiguousarray(batch, dtype=np.float32)}
        if self.conditioned:
            feeds["thresholds"] = self.thresholds
        got = self.session.run(self.outputs, feeds)
        y = np.asarray(got[0], dtype=np.float32)
        if self.channels is not None:
            y = np.ascontiguousarray(y[:, self.channels])
        if len(got) > 1:
            y = np.concatenate([y, np.asarray(got[1], dtype=np.float32)], axis=1)
        return y
