"""Which Python the subprocess backend runs: never an interpreter it has not checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.plugin.helpers import PYTHON

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


@pytest.fixture
def nothing_set_up(monkeypatch, tmp_path):
    """No $CANOPYGAPS_PYTHON, no engine venv, no checkout .venv: only candidates remain."""
    from chm_plugin import engine_env

    monkeypatch.delenv("CANOPYGAPS_PYTHON", raising=False)
    monkeypatch.setattr(engine_env, "profile_dir", lambda: tmp_path / "profile")
    monkeypatch.setattr(engine_env, "PLUGIN_DIR", tmp_path / "plugins" / "chm_plugin")
    return engine_env


def test_unchecked_pythons_are_never_used(nothing_set_up, monkeypatch, bare_python):
    env = nothing_set_up
    monkeypatch.setattr(env, "qgis_python", lambda: bare_python)
    monkeypatch.setattr(env.shutil, "which", lambda name: bare_python)
    assert sorted(env.missing_modules(bare_python)) == sorted(env.REQUIRED.values())
    assert env.default_python() == ""


def test_a_python_with_the_packages_is_used(nothing_set_up, monkeypatch, bare_python):
    env = nothing_set_up
    monkeypatch.setattr(env, "qgis_python", lambda: bare_python)
    monkeypatch.setattr(env.shutil, "which", lambda name: PYTHON if name == "python3" else None)
    assert env.missing_modules(PYTHON) == []
    assert env.default_python() == PYTHON


def test_the_installed_engine_venv_comes_first(nothing_set_up, monkeypatch):
    env = nothing_set_up
    venv = env.engine_venv()
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(PYTHON)
    assert env.installed_python() is None  # no marker: an unfinished install
    (venv / env.MARKER).write_text(json.dumps({"format": "canopygaps-engine-venv"}))
    assert env.installed_python() == venv / "bin" / "python"
    assert env.default_python() == str(venv / "bin" / "python")
    monkeypatch.setenv("CANOPYGAPS_PYTHON", "/opt/my/python")
    assert env.default_python() == "/opt/my/python"


def test_no_engine_python_is_a_first_run_message(nothing_set_up, monkeypatch, bare_python):
    from qgis.core import QgsProcessingException

    from chm_plugin import plugin
    from chm_plugin.backends.subprocess_backend import SubprocessBackend

    env = nothing_set_up
    monkeypatch.setattr(env, "qgis_python", lambda: None)
    monkeypatch.setattr(env.shutil, "which", lambda name: None)
    monkeypatch.setenv("CANOPYGAPS_BACKEND", "subprocess")
    assert plugin.needs_install()
    with pytest.raises(QgsProcessingException, match="Run 'Install engine'"):
        SubprocessBackend("").check()


def test_qgis_python_is_the_running_version():
    from chm_plugin.engine_env import qgis_python
    from chm_plugin.installer import python_version, qgis_version_tag

    python = qgis_python()
    assert python and Path(python).is_file()
    assert python_version(python) == qgis_version_tag()
