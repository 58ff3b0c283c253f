"""The engine's Python: which interpreter the subprocess backend runs, and the engine venv.

'Install engine' builds ``<QGIS profile>/canopygaps/engine-venv`` (made by the Python that runs
QGIS, ``--system-site-packages`` so GDAL, rasterio and numpy of the system are reused) and
writes a marker file into it when every dependency imports. Without a Python chosen in the
settings, the subprocess backend runs, in this order: ``$CANOPYGAPS_PYTHON``, that venv, the
source checkout's ``.venv``, then QGIS's own Python or ``python3`` on PATH, but only when
:func:`missing_modules` finds the engine's dependencies there: never an unchecked interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from chm_plugin.paths import PLUGIN_DIR

VENV_FOLDER = ("canopygaps", "engine-venv")
MARKER = "canopygaps-engine.json"
# import name -> pip package name of what the engine needs in its Python
REQUIRED = {
    "numpy": "numpy",
    "rasterio": "rasterio",
    "scipy": "scipy",
    "safetensors": "safetensors",
    "yaml": "pyyaml",
    "torch": "torch",
}
INSTALL_ACTION = (
    "Run 'Install engine' (Processing Toolbox > Canopy gaps > Tools) once: it sets up a Python "
    "with everything the engine needs in your QGIS profile. Or choose another Python in "
    "Settings > Options > Processing > Providers > Canopy gaps."
)


def profile_dir() -> Path:
    """The active QGIS profile folder."""
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath())


def engine_venv() -> Path:
    """Where 'Install engine' builds the engine's venv."""
    return profile_dir().joinpath(*VENV_FOLDER)


def venv_python(venv: Path) -> Path:
    """The interpreter of ``venv`` (POSIX or Windows layout)."""
    posix = venv / "bin" / "python"
    return posix if posix.exists() or os.name != "nt" else venv / "Scripts" / "python.exe"


def installed_python() -> Path | None:
    """The engine venv's interpreter when 'Install engine' completed, else None."""
    venv = engine_venv()
    python = venv_python(venv)
    return python if (venv / MARKER).is_file() and python.exists() else None


def clean_env() -> dict[str, str]:
    """The environment for another Python: without QGIS's own Python settings."""
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        env.pop(key, None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def missing_modules(python: str, modules: dict[str, str] | None = None) -> list[str] | None:
    """pip names of the engine dependencies ``python`` cannot find (no import: about 50 ms),
    or None when ``python`` does not run."""
    modules = REQUIRED if modules is None else modules
    code = (
        "import importlib.util as u, json, sys\n"
        f"print(json.dumps([m for m in {list(modules)!r} if u.find_spec(m) is None]))"
    )
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env()
        )
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        found = None
    return None if found is None else [modules[m] for m in found]


def _looks_like_python(path: str) -> bool:
    return Path(path).name.lower().startswith("python")


def qgis_python() -> str | None:
    """The Python interpreter that runs QGIS (same version), or None when it is not found.

    Inside QGIS ``sys.executable`` is often the QGIS program itself, so the interpreter is
    looked for next to the running Python's prefix too.
    """
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [sys.executable, getattr(sys, "_base_executable", "")]
    for prefix in {sys.base_exec_prefix, sys.exec_prefix}:
        candidates += [
            os.path.join(prefix, "bin", f"python{version}"),
            os.path.join(prefix, "bin", "python3"),
            os.path.join(prefix, "python.exe"),
            os.path.join(prefix, "python3.exe"),
        ]
    for candidate in candidates:
        if candidate and _looks_like_python(candidate) and os.path.isfile(candidate):
            return candidate
    return shutil.which(f"python{version}")


def default_python() -> str:
    """The subprocess backend's interpreter when the settings name none ('' = none usable)."""
    env = os.environ.get("CANOPYGAPS_PYTHON", "").strip()
    if env:
        return env
    installed = installed_python()
    if installed is not None:
        return str(installed)
    for venv in (PLUGIN_DIR.parent / ".venv", PLUGIN_DIR / ".venv"):
        for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
    for found in (qgis_python(), shutil.which("python3"), shutil.which("python")):
        if found and missing_modules(found) == []:
            return found
    return ""
