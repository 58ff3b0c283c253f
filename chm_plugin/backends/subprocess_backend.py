"""Subprocess backend: ``<python> -m engine request --file REQ.json --jsonl``.

The interpreter comes from the provider settings (default: see ``chm_plugin.paths.default_python``)
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
from chm_plugin.paths import engine_root

SETTINGS_PLACE = "Settings > Options > Processing > Providers > Canopy gaps"


class SubprocessBackend(ProcessBackend):
    """Runs the engine CLI with a separate Python interpreter."""

    name = "subprocess"
    label = "Subprocess"

    def __init__(self, python: str) -> None:
        self.python = python

    def _resolved_python(self) -> str | None:
        if os.path.sep in self.python or (os.altsep and os.altsep in self.python):
            return self.python if Path(self.python).is_file() else None
        return shutil.which(self.python)

    def check(self) -> None:
        if self._resolved_python() is None:
            raise QgsProcessingException(
                f"The engine's Python interpreter '{self.python}' was not found. Set 'Python "
                f"interpreter of the engine' in {SETTINGS_PLACE} (or $CANOPYGAPS_PYTHON) to a "
                "Python that has the canopygaps engine and its dependencies (numpy, rasterio, "
                "torch) installed."
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
                    f"The Python interpreter {self.python} cannot import the canopygaps engine. "
                    "Reinstall the plugin (it bundles the engine) or install it there with "
                    f"'{self.python} -m pip install canopygaps', or choose another interpreter in "
                    f"{SETTINGS_PLACE}."
                )
            return (
                f"The Python interpreter {self.python} lacks the package '{module}'. Install the "
                f"engine's dependencies there ('{self.python} -m pip install canopygaps'), or "
                f"choose another interpreter in {SETTINGS_PLACE}."
            )
        return (
            f"Check that {self.python} runs the engine: '{self.python} -m engine diagnostics' "
            "(or run the Canopy gaps Diagnostics algorithm)."
        )
