"""Diagnostics: versions of QGIS, GDAL (QGIS's and the engine's), torch, CUDA, the backend."""

from __future__ import annotations

import json
import sys

from qgis.core import Qgis, QgsProcessingOutputString

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.backends import EngineRequest

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


class DiagnosticsAlgorithm(EngineAlgorithm):
    NAME = "diagnostics"
    DISPLAY = "Diagnostics (versions, GPU, backend)"
    GROUP = "Tools"
    GROUP_ID = "tools"
    BACKEND_ADVANCED = False
    HELP = (
        "Reports what the Canopy gaps algorithms run on: the QGIS version and the GDAL of the "
        "QGIS process, then, from the engine started by the chosen backend, its version, Python, "
        "GDAL, torch and CUDA (GPU) versions. Run it first when something does not work, and "
        "attach its log to bug reports."
    )

    def init_parameters(self) -> None:
        for key, label in OUTPUTS:
            self.addOutput(QgsProcessingOutputString(key, self.tr(label)))

    def build_request(self, parameters, context, feedback):
        return EngineRequest("diagnostics", {})

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
        report = {**qgis_side, **engine_side, "engine": info}
        return {**qgis_side, **engine_side, "REPORT": json.dumps(report, default=str)}
