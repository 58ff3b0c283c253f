"""``canopygaps diagnostics``: versions and compute devices of the engine's Python."""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass
from typing import Any

from engine import __version__
from engine.config.base import Config
from engine.events import Reporter


@dataclass
class DiagnosticsConfig(Config):
    """No settings: diagnostics only reads the environment."""


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "unknown"))


def collect() -> dict[str, Any]:
    """Versions of the engine's dependencies and the devices torch can use."""
    info: dict[str, Any] = {
        "engine": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "rasterio": _version("rasterio"),
        "scipy": _version("scipy"),
        "safetensors": _version("safetensors"),
        "pyyaml": _version("yaml"),
        "onnxruntime": _version("onnxruntime"),
    }
    try:
        from osgeo import gdal

        info["gdal"] = gdal.__version__
    except Exception:
        try:
            import rasterio

            info["gdal"] = rasterio.__gdal_version__
        except Exception:
            info["gdal"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["cuda_version"] = torch.version.cuda
        info["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
        info["cpu_threads"] = torch.get_num_threads()
        info["cpu_bf16"] = bool(
            getattr(torch.backends, "mkldnn", None) and torch.backends.mkldnn.is_available()
        )
    except Exception as exc:  # torch missing or broken
        info["torch"] = None
        info["torch_error"] = str(exc)
        info["cuda_available"] = False
    return info


def run_diagnostics(config: DiagnosticsConfig, reporter: Reporter) -> dict[str, Any]:
    """Collect diagnostics and log a one-line summary."""
    info = collect()
    reporter.log(
        f"engine {info['engine']} | python {info['python']} | GDAL {info['gdal']} | "
        f"torch {info['torch']} | CUDA {'yes' if info['cuda_available'] else 'no'}"
    )
    reporter.progress(1.0, "diagnostics")
    return info
