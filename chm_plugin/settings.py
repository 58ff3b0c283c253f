"""Provider settings (Settings > Options > Processing > Providers > Canopy gaps).

Stored by Processing's ``ProcessingConfig`` in QgsSettings under
``Processing/Configuration/<NAME>``; read back through ProcessingConfig when the Processing
plugin is loaded and straight from QgsSettings otherwise (e.g. plain PyQGIS scripts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from qgis.core import QgsSettings

BACKENDS = ("inprocess", "subprocess", "docker")
BACKEND_LABELS = (
    "In-process (engine inside QGIS's Python)",
    "Subprocess (separate Python interpreter)",
    "Docker container",
)
DEFAULT_BACKEND = "subprocess"
DEFAULT_DOCKER_IMAGE = "canopygaps:cpu"

BACKEND = "CANOPYGAPS_BACKEND"
PYTHON = "CANOPYGAPS_PYTHON"
DOCKER_IMAGE = "CANOPYGAPS_DOCKER_IMAGE"
DOCKER_GPU = "CANOPYGAPS_DOCKER_GPU"
DOCKER_ARGS = "CANOPYGAPS_DOCKER_ARGS"
GROUP = "Canopy gaps"


def _setting_objects():
    from processing.core.ProcessingConfig import Setting

    return [
        Setting(
            GROUP,
            BACKEND,
            "Default backend",
            BACKEND_LABELS[BACKENDS.index(DEFAULT_BACKEND)],
            valuetype=Setting.SELECTION,
            options=list(BACKEND_LABELS),
        ),
        Setting(
            GROUP,
            PYTHON,
            "Python interpreter of the engine (subprocess backend; empty = the one set up by "
            "'Install engine')",
            "",
            valuetype=Setting.FILE,
        ),
        Setting(GROUP, DOCKER_IMAGE, "Docker image of the engine", DEFAULT_DOCKER_IMAGE),
        Setting(GROUP, DOCKER_GPU, "Docker: use the GPUs (--gpus all)", False),
        Setting(GROUP, DOCKER_ARGS, "Docker: extra 'docker run' arguments", ""),
    ]


def register() -> None:
    """Add the settings to Processing's options dialog (no-op without the Processing plugin)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return
    for setting in _setting_objects():
        ProcessingConfig.addSetting(setting)
    ProcessingConfig.readSettings()


def unregister() -> None:
    """Remove the settings from Processing's options dialog."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return
    for name in (BACKEND, PYTHON, DOCKER_IMAGE, DOCKER_GPU, DOCKER_ARGS):
        if name in ProcessingConfig.settings:
            ProcessingConfig.removeSetting(name)


def _raw(name: str) -> Any:
    """The setting ``name`` from Processing's options, else from QgsSettings (None = unset)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig

        if name in ProcessingConfig.settings:
            return ProcessingConfig.getSetting(name, readable=True)
    except ImportError:
        pass
    return QgsSettings().value("Processing/Configuration/" + name, None)


def _as_bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def backend_name(value: Any = None) -> str:
    """Normalise a backend given as id, label, index or None (None = the default setting)."""
    if value in (None, "", -1):
        value = os.environ.get("CANOPYGAPS_BACKEND") or _raw(BACKEND)
    if value in (None, ""):
        return DEFAULT_BACKEND
    if isinstance(value, int) or str(value).isdigit():
        index = int(value)
        return BACKENDS[index] if 0 <= index < len(BACKENDS) else DEFAULT_BACKEND
    text = str(value).strip().lower()
    for ident, label in zip(BACKENDS, BACKEND_LABELS, strict=True):
        if text in (ident, label.lower()) or label.lower().startswith(text):
            return ident
    return DEFAULT_BACKEND


@dataclass
class PluginSettings:
    """The provider settings as plain values."""

    backend: str
    python: str
    docker_image: str
    docker_gpu: bool
    docker_args: str


def current() -> PluginSettings:
    """Read the settings now (each run reads them afresh)."""
    from chm_plugin.engine_env import default_python

    python = str(_raw(PYTHON) or "").strip() or default_python()
    image = str(_raw(DOCKER_IMAGE) or "").strip() or os.environ.get(
        "CANOPYGAPS_DOCKER_IMAGE", DEFAULT_DOCKER_IMAGE
    )
    gpu_raw = _raw(DOCKER_GPU)
    gpu = (
        _as_bool(gpu_raw)
        if gpu_raw not in (None, "")
        else _as_bool(os.environ.get("CANOPYGAPS_DOCKER_GPU", "0"))
    )
    return PluginSettings(
        backend=backend_name(None),
        python=python,
        docker_image=image,
        docker_gpu=gpu,
        docker_args=str(_raw(DOCKER_ARGS) or ""),
    )
