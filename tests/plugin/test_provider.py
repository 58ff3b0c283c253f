"""Provider registration, settings, help texts, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.qgis

EXPECTED = {"canopygaps:diagnostics"}


def test_provider_lists_algorithms(provider):
    from qgis.core import QgsApplication

    ids = {
        alg.id()
        for alg in QgsApplication.processingRegistry().providerById("canopygaps").algorithms()
    }
    assert ids >= EXPECTED


def test_every_algorithm_has_help(provider):
    from qgis.core import QgsProcessingParameterDefinition

    for alg in provider.algorithms():
        assert len(alg.shortHelpString()) > 80, alg.id()
        for param in alg.parameterDefinitions():
            assert param.help(), f"{alg.id()} {param.name()} has no help"
            assert param.name() == param.name().upper()
        backend = alg.parameterDefinition("BACKEND")
        if alg.name() in ("chain", "install_engine"):  # no engine request of their own
            assert backend is None
            continue
        assert backend is not None
        if alg.name() != "diagnostics":
            assert backend.flags() & QgsProcessingParameterDefinition.FlagAdvanced


def test_plugin_registers_provider_without_importing_torch_or_rasterio():
    code = (
        "import sys, json\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "import chm_plugin\n"
        "plugin = chm_plugin.classFactory(None)\n"
        "plugin.initGui(); plugin.initProcessing()\n"
        "reg = QgsApplication.processingRegistry()\n"
        "p = reg.providerById('canopygaps')\n"
        "n = len([x for x in reg.providers() if x.id() == 'canopygaps'])\n"
        "[a.shortHelpString() for a in p.algorithms()]\n"
        "ids = sorted(a.id() for a in p.algorithms())\n"
        "plugin.unload()\n"
        "mods = {m: m in sys.modules for m in ('torch', 'rasterio', 'engine', 'scipy')}\n"
        "print(json.dumps({'mods': mods, 'n': n, 'ids': ids,"
        " 'after': reg.providerById('canopygaps') is None}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [s for s in out.stdout.splitlines() if s.startswith("{")]
    assert line, out.stderr
    out = json.loads(line[-1])
    assert out["mods"] == {"torch": False, "rasterio": False, "engine": False, "scipy": False}
    assert out["n"] == 1 and out["after"]
    assert set(out["ids"]) >= EXPECTED


def test_backend_setting_names():
    from chm_plugin import settings

    assert settings.backend_name("inprocess") == "inprocess"
    assert settings.backend_name(2) == "docker"
    assert settings.backend_name("Docker container") == "docker"
    assert settings.current().python


def test_provider_settings_choose_the_default_backend(provider, monkeypatch):
    from processing.core.ProcessingConfig import ProcessingConfig

    from chm_plugin import settings
    from chm_plugin.backends import get_backend

    monkeypatch.delenv("CANOPYGAPS_BACKEND", raising=False)
    for name in (settings.BACKEND, settings.PYTHON, settings.DOCKER_IMAGE, settings.DOCKER_GPU):
        assert name in ProcessingConfig.settings
    before = ProcessingConfig.getSetting(settings.BACKEND)
    try:
        ProcessingConfig.setSettingValue(settings.BACKEND, 0)
        assert settings.current().backend == "inprocess"
        assert get_backend(None).name == "inprocess"
        ProcessingConfig.setSettingValue(settings.BACKEND, 2)
        assert get_backend(None).name == "docker"
        assert get_backend("subprocess").name == "subprocess"
    finally:
        ProcessingConfig.setSettingValue(settings.BACKEND, before)
