"""Subprocess backend: ``<python> -m engine request --file REQ.json --jsonl``.

The interpreter comes from the provider settings (default: ``chm_plugin.engine_env.default_python``)
and ``PYTHONPATH`` gets the bundled engine (packaged plugin) or the source checkout, so the child
imports the engine that ships with this plugin.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from qgis.core import QgsProcessingException

from chm_plugin.backends.base import EngineRequest, Invocation, ProcessBackend
from chm_plugin.engine_env import INSTALL_ACTION, REQUIRED
from chm_plugin.paths import engine_root

SETTINGS_PLACE = "Settings > Options > Processing > Providers > Canopy gaps"


class SubprocessBackend(ProcessBackend):
    """Runs the engine CLI with a separate Python interpreter."""

    name = "subprocess"
    label = "Subprocess"

    def __init__(self, python: str) -> None:
        self.python = python

    def _resolved_python(self) -> str | None:
        if not self.python:
            return None
        if os.path.sep in self.python or (os.altsep and os.altsep in self.python):
            return self.python if Path(self.python).is_file() else None
        return shutil.which(self.python)

    def check(self) -> None:
        if not self.python:
            raise QgsProcessingException(
                "No Python with the engine's packages (torch, rasterio, numpy, scipy, "
                f"safetensors, pyyaml) was found for the Subprocess backend. {INSTALL_ACTION}"
            )
        if self._resolved_python() is None:
            raise QgsProcessingException(
                f"The engine's Python interpreter '{self.python}' was not found. Set 'Python "
                f"interpreter of the engine' in {SETTINGS_PLACE} to an existing Python, or "
                "clear it to use the one 'Install engine' (Processing Toolbox > Canopy gaps > "
                "Tools) sets up."
            )

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "python": self._resolved_python() or self.python}

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        root = engine_root()
        if root is not None:
            parts = [str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        # QGIS sets these for its own Python; they confuse another interpreter.
        for key in ("PYTHONHOME", "PYTHONSTARTUP"):
            env.pop(key, None)
        return env

    def invocation(self, request: EngineRequest, workdir: str) -> Invocation:
        self.check()
        path = Path(workdir) / f"request-{request.command}.json"
        path.write_text(request.to_json(), encoding="utf-8")
        argv = [
            self._resolved_python() or self.python,
            "-m",
            "engine",
            "request",
            "--file",
            str(path),
            "--jsonl",
        ]
        return Invocation(argv=argv, env=self.environment(), temp_files=[str(path)])

    def explain_failure(self, stderr: str) -> str:
        match = re.search(r"No module named '?([\w.]+)'?", stderr)
        if match:
            module = match.group(1).split(".")[0]
            if module == "engine":
                return (
                    f"The Python interpreter {self.python} cannot import the canopygaps engine "
                    "that comes with the plugin: reinstall the plugin."
                )
            return missing_module_hint(module, self.python)
        return (
            f"Check that {self.python} runs the engine: run the Diagnostics algorithm "
            "(Processing Toolbox > Canopy gaps > Tools)."
        )


def missing_module_hint(module: str, python: str) -> str:
    """What to do when the engine's Python lacks ``module``."""
    package = REQUIRED.get(module, module)
    return f"The engine's Python {python} lacks the package '{package}'. {INSTALL_ACTION}"
