"""Shared benchmark plumbing: settings per mode, statistics, figures, machine, child processes."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
SCHEMA = "canopygaps-bench"
SCHEMA_VERSION = 1


@dataclass
class Settings:
    """Sizes and repeat counts of one mode (full or quick)."""

    infer_sizes: list[int]
    repeats: dict[int, int]  # inference runs per raster size (fresh process each)
    base_size: int  # synthetic scene mirrored to build larger rasters
    tile: int  # inference tile size (engine default 512)
    forward_sample: int  # at most this many tiles timed for the pure forward figure
    precision_sizes: list[int]  # sizes also run in fixed fp32 and bf16 (precision lever)
    runtime_sizes: list[
        int
    ]  # sizes also run with runtime torch and onnxruntime (fp32) side by side
    seam_size: int
    seam_schemes: list[str]  # names of bench.seams.SCHEMES to run
    matmul_n: int
    roofline_tile: int
    roofline_repeats: int
    roofline_time_all: bool  # also time the forward pass of every registered model
    onnx_tile: int
    onnx_repeats: int
    demo_size: int  # synthetic scene of the demo dataset
    train_tile: int
    train_epochs: int  # timed epochs
    train_warmup_epochs: int  # untimed epochs run first
    train_batch: int
    train_variants: list[str]  # names of bench.training.VARIANTS to run
    label_sizes: list[int]
    prep_repeats: int

    @property
    def memory_pair(self) -> tuple[int, int]:
        """The two raster sizes whose peak RSS is compared (the two largest)."""
        sizes = sorted(self.infer_sizes)
        return (sizes[-2], sizes[-1]) if len(sizes) > 1 else (sizes[0], sizes[0])


FULL = Settings(
    infer_sizes=[1024, 4096, 16384],
    repeats={1024: 5, 4096: 2, 16384: 1},
    base_size=1024,
    tile=512,
    forward_sample=64,
    precision_sizes=[1024],
    runtime_sizes=[1024],
    seam_size=1024,
    seam_schemes=["crop-fp32", "crop-bf16", "ramp-fp32", "no-overlap-fp32"],
    matmul_n=2048,
    roofline_tile=512,
    roofline_repeats=3,
    roofline_time_all=True,
    onnx_tile=512,
    onnx_repeats=3,
    demo_size=1024,
    train_tile=256,
    train_epochs=2,
    train_warmup_epochs=1,
    train_batch=8,
    train_variants=["fp32", "bf16", "bf16-channels_last"],
    label_sizes=[1024, 4096],
    prep_repeats=3,
)

QUICK = Settings(
    infer_sizes=[256, 512],
    repeats={256: 1, 512: 1},
    base_size=512,
    tile=128,
    forward_sample=8,
    precision_sizes=[],
    runtime_sizes=[256],
    seam_size=256,
    seam_schemes=["crop-fp32", "no-overlap-fp32"],
    matmul_n=256,
    roofline_tile=128,
    roofline_repeats=1,
    roofline_time_all=False,
    onnx_tile=128,
    onnx_repeats=1,
    demo_size=256,
    train_tile=64,
    train_epochs=1,
    train_warmup_epochs=0,
    train_batch=4,
    train_variants=["fp32", "bf16"],
    label_sizes=[256],
    prep_repeats=1,
)


@dataclass
class Context:
    """What every benchmark gets: mode, paths, devices and a cache of inference child runs."""

    quick: bool
    work: Path
    command: str
    settings: Settings
    devices: list[str]
    infer_runs: dict[tuple[Any, ...], list[dict[str, Any]]] = field(default_factory=dict)

    def bench_command(self, name: str) -> str:
        """The command line that reproduces benchmark ``name`` alone."""
        return f"python -m bench.run --only {name}" + (" --quick" if self.quick else "")


# -- statistics --------------------------------------------------------------------------------
def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _round(value: float, digits: int = 4) -> float:
    if value == 0 or value != value:  # zero or NaN
        return value
    from math import floor, log10

    return round(value, max(0, digits - 1 - floor(log10(abs(value)))))


def figure(
    name: str,
    unit: str,
    samples: Sequence[float] | float,
    *,
    better: str = "higher",
    command: str = "",
    note: str = "",
    **params: Any,
) -> dict[str, Any]:
    """A figure: median of ``samples`` with its spread (min/max and interquartile range)."""
    values = [float(samples)] if isinstance(samples, (int, float)) else [float(v) for v in samples]
    if not values:
        raise ValueError(f"figure {name!r} has no samples")
    out: dict[str, Any] = {
        "name": name,
        "unit": unit,
        "median": _round(statistics.median(values)),
        "min": _round(min(values)),
        "max": _round(max(values)),
        "q1": _round(_quantile(values, 0.25)),
        "q3": _round(_quantile(values, 0.75)),
        "runs": len(values),
        "samples": [_round(v) for v in values],
        "better": better,
        "command": command,
        "params": params,
    }
    if note:
        out["note"] = note
    return out


def target(
    name: str, value: float | None, limit: float, description: str, informational: bool = False
) -> dict[str, Any]:
    """A pass/fail check ``value <= limit`` (``informational`` in quick mode: sizes too small)."""
    passed = None if value is None else bool(value <= limit)
    return {
        "name": name,
        "description": description,
        "value": None if value is None else _round(value),
        "limit": limit,
        "passed": passed,
        "informational": informational,
    }


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# -- machine -------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, library versions and compute devices of this machine."""
    import numpy as np
    import torch

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.is_available(),
        "devices": ["cpu"],
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except ImportError:
        pass
    try:
        from engine.inference.device import cpu_has_bf16

        info["cpu_native_bf16"] = cpu_has_bf16()
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["devices"] += [
            f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
        ]
        info["cuda_version"] = torch.version.cuda
    for mod in ("onnxruntime", "onnx", "rasterio", "scipy"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    try:
        import rasterio

        info["gdal"] = rasterio.__gdal_version__
    except (ImportError, AttributeError):
        info["gdal"] = None
    try:
        from engine import __version__

        info["engine"] = __version__
    except ImportError:
        info["engine"] = None
    info["git"] = _git()
    return info


def compute_devices() -> list[str]:
    """``cpu`` plus ``cuda`` when torch sees a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


# -- engine requests and child processes -----------------------------------------------------
def cli_line(command: str, params: dict[str, Any]) -> str:
    """The ``canopygaps`` command line equivalent to an engine request."""
    parts = ["canopygaps", command]
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        parts += [f"--{key}", str(value)]
    return " ".join(parts)


class ChildError(RuntimeError):
    """A benchmark subprocess failed."""


def run_child(spec: dict[str, Any], timeout: float = 3600.0) -> dict[str, Any]:
    """Run ``python -m bench.child`` on ``spec`` in a fresh process; return its JSON report."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        result_path = Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**spec, "result": str(result_path)}), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", str(spec_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or not result_path.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
            raise ChildError(
                f"bench child ({spec.get('command')}) exited with {proc.returncode}:\n"
                + "\n".join(tail)
            )
        data: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        return data


def log(message: str) -> None:
    """Progress line on stderr (stdout stays clean)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
