"""Diagnostics: versions of QGIS, GDAL (QGIS's and the engine's), torch, CUDA, the backend."""

from __future__ import annotations

import json
import sys

from qgis.core import Qgis, QgsProcessingException, QgsProcessingOutputString

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.backends import Backend
from chm_plugin.engine_env import INSTALL_ACTION, REQUIRED

OUTPUTS = [
    ("QGIS_VERSION", "QGIS version"),
    ("QGIS_GDAL_VERSION", "GDAL version in QGIS"),
    ("QGIS_PYTHON", "QGIS's Python"),
    ("BACKEND", "Engine backend"),
    ("ENGINE_VERSION", "Engine version"),
    ("ENGINE_PYTHON", "Engine's Python"),
    ("ENGINE_GDAL_VERSION", "GDAL version in the engine"),
    ("TORCH_VERSION", "torch version"),
    ("CUDA_AVAILABLE", "CUDA available"),
    ("CUDA_VERSION", "CUDA version"),
    ("CUDA_DEVICES", "CUDA devices"),
    ("REPORT", "Full report (JSON)"),
]


def qgis_gdal_version() -> str:
    try:
        from osgeo import gdal

        return gdal.__version__
    except ImportError:
        from qgis.core import QgsProviderRegistry

        return QgsProviderRegistry.instance().providerMetadata("gdal").description()


def missing_packages(info: dict) -> list[str]:
    """pip names of the engine dependencies the diagnostics report found missing."""
    return [pip for pip in REQUIRED.values() if not info.get(pip)]


def missing_hint(backend: Backend) -> str:
    """What to do about missing packages with ``backend``."""
    if backend.name == "docker":
        return "The Docker image is incomplete: rebuild it from the canopygaps sources."
    if backend.name == "inprocess":
        from chm_plugin.backends.inprocess import INSTALL_HINT

        return INSTALL_HINT
    return INSTALL_ACTION


class DiagnosticsAlgorithm(EngineAlgorithm):
    NAME = "diagnostics"
    COMMAND = "diagnostics"
    DISPLAY = "Diagnostics (versions, GPU, backend)"
    GROUP, GROUP_ID = "Tools", "tools"
    ANCHOR = "diagnostics-diagnostics"
    ICON = "diagnostics"
    TAGS = ("canopy", "gap", "versions", "gpu", "cuda", "torch", "python", "check", "support")
    BACKEND_ADVANCED = False
    SHORT = "Checks the engine's Python: versions, packages, GPU."
    HELP = (
        "Reports the QGIS version and the GDAL of the QGIS process, then, from the engine "
        "started by the chosen backend, its version, Python, GDAL, torch and CUDA (GPU) "
        "versions. Fails, naming what to install, when the engine's Python lacks a package "
        "the engine needs.\n"
        "Run it first when something does not work, and attach its log to bug reports."
    )

    def init_parameters(self) -> None:
        for key, label in OUTPUTS:
            self.addOutput(QgsProcessingOutputString(key, self.tr(label)))

    def build_request(self, parameters, context, feedback):
        return self.request({})

    def processAlgorithm(self, parameters, context, feedback):
        from chm_plugin.backends import get_backend
        from chm_plugin.runner import run_engine

        backend = get_backend(self.backend_from(parameters, context))
        qgis_side = {
            "QGIS_VERSION": Qgis.QGIS_VERSION,
            "QGIS_GDAL_VERSION": qgis_gdal_version(),
            "QGIS_PYTHON": sys.version.split()[0] + " " + sys.executable,
        }
        for key, value in qgis_side.items():
            feedback.pushInfo(f"{key}: {value}")
        info = run_engine(self.build_request(parameters, context, feedback), feedback, backend)
        devices = info.get("cuda_devices") or []
        engine_side = {
            "BACKEND": ", ".join(f"{k}={v}" for k, v in backend.describe().items()),
            "ENGINE_VERSION": str(info.get("engine")),
            "ENGINE_PYTHON": f"{info.get('python')} {info.get('python_executable', '')}".strip(),
            "ENGINE_GDAL_VERSION": str(info.get("gdal")),
            "TORCH_VERSION": str(info.get("torch")),
            "CUDA_AVAILABLE": "yes" if info.get("cuda_available") else "no",
            "CUDA_VERSION": str(info.get("cuda_version")),
            "CUDA_DEVICES": ", ".join(devices) if devices else "none",
        }
        for key, value in engine_side.items():
            feedback.pushInfo(f"{key}: {value}")
        missing = missing_packages(info)
        if missing:
            raise QgsProcessingException(
                f"The engine's Python ({engine_side['ENGINE_PYTHON']}) lacks "
                f"{', '.join(missing)}. {missing_hint(backend)}"
            )
        report = {**qgis_side, **engine_side, "engine": info}
        return {**qgis_side, **engine_side, "REPORT": json.dumps(report, default=str)}
