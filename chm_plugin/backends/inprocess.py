"""In-process backend: ``engine.api.run_request`` inside QGIS's own Python.

Fastest start-up, but the engine's dependencies (numpy, rasterio, torch) must be importable from
QGIS's Python and a crash in them takes QGIS down: the subprocess backend is the default.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from chm_plugin.backends.base import Backend, EngineRequest
from chm_plugin.paths import BUNDLED_ENGINE_ROOT, engine_root

INSTALL_HINT = (
    "QGIS's own Python lacks what the engine needs. Choose the Subprocess backend (Advanced "
    "parameter 'Engine backend', or Settings > Options > Processing > Providers > Canopy gaps) "
    "and run 'Install engine' (Processing Toolbox > Canopy gaps > Tools) once."
)


def import_engine_api() -> ModuleType:
    """Import ``engine.api``: the engine bundled with the plugin first, else an installed one,
    else the source checkout's."""
    root = engine_root()
    if root == BUNDLED_ENGINE_ROOT and "engine" not in sys.modules and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("engine.api")
    except ImportError as exc:
        first = exc
        root = engine_root()
        if root is not None and str(root) not in sys.path:
            sys.path.append(str(root))
            sys.modules.pop("engine", None)
            try:
                return importlib.import_module("engine.api")
            except ImportError as again:
                first = again
        raise QgsProcessingException(
            f"The canopygaps engine cannot be imported in QGIS's Python ({first}). {INSTALL_HINT}"
        ) from first


class InProcessBackend(Backend):
    """Runs the request in this process with a reporter bridging to the feedback."""

    name = "inprocess"
    label = "In-process"

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "python": sys.executable}

    def run(
        self,
        request: EngineRequest,
        feedback: QgsProcessingFeedback,
        on_event: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Run ``request``; ``on_event(event)`` receives every engine event.

        Engine errors propagate as engine exceptions; the runner converts them.
        """
        api = import_engine_api()
        from engine.events import CallbackReporter

        reporter = CallbackReporter(on_event, is_cancelled=feedback.isCanceled)
        return api.run_request(request.to_dict(), reporter)
