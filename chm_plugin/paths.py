"""Where things are: the plugin folder, the engine package, bundled styles and models."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
BUNDLED_ENGINE_ROOT = PLUGIN_DIR / "vendor"


def engine_root() -> Path | None:
    """The folder to put on ``sys.path``/``PYTHONPATH`` so that ``import engine`` works.

    A packaged plugin bundles the engine (``chm_plugin/vendor/engine``, so that only the name
    ``engine`` is added to the import path); in a source checkout the engine is a sibling of the
    plugin folder (``<repo>/engine``).
    """
    for root in (BUNDLED_ENGINE_ROOT, PLUGIN_DIR.parent):
        if (root / "engine" / "__init__.py").is_file() and (root / "engine" / "api.py").is_file():
            return root
    return None


def resource(*parts: str) -> Path | None:
    """A bundled resource file (QML style, .model3): ``chm_plugin/resources`` in the packaged
    plugin, ``<repo>/resources`` in a source checkout."""
    for base in (PLUGIN_DIR / "resources", PLUGIN_DIR.parent / "resources"):
        path = base.joinpath(*parts)
        if path.exists():
            return path
    return None


def _looks_like_python(path: str) -> bool:
    return Path(path).name.lower().startswith("python")


def default_python() -> str:
    """The interpreter the subprocess backend uses when the settings name none.

    Inside QGIS ``sys.executable`` is often the QGIS binary, so: ``$CANOPYGAPS_PYTHON``, then
    the source checkout's ``.venv``, then ``sys.executable`` when it is a Python, then
    ``python3``/``python`` on PATH.
    """
    env = os.environ.get("CANOPYGAPS_PYTHON", "").strip()
    if env:
        return env
    for venv in (PLUGIN_DIR.parent / ".venv", PLUGIN_DIR / ".venv"):
        for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
    if sys.executable and _looks_like_python(sys.executable):
        return sys.executable
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found:
            return found
    return "python3"
