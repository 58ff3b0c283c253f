"""Where things are: the plugin folder, the bundled engine, models, styles, icons and help."""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
BUNDLED_ENGINE_ROOT = PLUGIN_DIR / "vendor"
ICONS = PLUGIN_DIR / "icons"
HELP_PAGE = PLUGIN_DIR / "help" / "index.html"


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
    """A bundled resource file (QML style, .model3, model): ``chm_plugin/resources`` in the
    packaged plugin, ``<repo>/resources`` in a source checkout."""
    for base in (PLUGIN_DIR / "resources", PLUGIN_DIR.parent / "resources"):
        path = base.joinpath(*parts)
        if path.exists():
            return path
    return None


def default_model() -> str:
    """The bundled default model file ('' when missing: the plugin was packaged without it)."""
    path = resource("models", "default.safetensors")
    return str(path) if path is not None else ""


def icon_path(name: str) -> str:
    """The SVG icon of algorithm ``name`` (the plugin icon when it has none)."""
    path = ICONS / f"{name}.svg"
    return str(path if path.is_file() else PLUGIN_DIR / "icon.svg")


def help_page() -> Path:
    """The help page: README rendered to HTML in the packaged plugin, the README in a
    checkout."""
    return HELP_PAGE if HELP_PAGE.is_file() else PLUGIN_DIR.parent / "README.md"


def help_url(anchor: str) -> str:
    """A file URL of the help page at the README section of ``anchor``."""
    from qgis.PyQt.QtCore import QUrl

    url = QUrl.fromLocalFile(str(help_page()))
    url.setFragment(anchor)
    return url.toString()
