"""The installer in-process: pip's output and progress reach the feedback; Cancel leaves
nothing (and an earlier environment untouched); the first-run hint in QGIS desktop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.plugin.helpers import RecordingFeedback
from tests.plugin.test_install_engine import shim_wheel

pytestmark = pytest.mark.qgis


class ConsoleFeedback:
    """A recording feedback that also keeps console lines (and may cancel on one)."""

    @staticmethod
    def create(cancel_on: str = ""):
        feedback = RecordingFeedback.create()
        feedback.lines = []

        def push(line, _fb=feedback):
            _fb.lines.append(line)
            if cancel_on and cancel_on in line:
                _fb.cancel()

        feedback.pushConsoleInfo = push
        return feedback


def test_run_streamed_passes_lines_and_cancels():
    from qgis.core import QgsProcessingException

    from chm_plugin.installer import run_streamed

    feedback = ConsoleFeedback.create()
    code = "import sys; print('one'); print('two', file=sys.stderr)"
    rc, tail = run_streamed([sys.executable, "-c", code], feedback)
    assert rc == 0 and sorted(tail) == ["one", "two"] and sorted(feedback.lines) == tail
    feedback = ConsoleFeedback.create(cancel_on="tick")
    code = "import time\nwhile True:\n    print('tick', flush=True); time.sleep(0.05)"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_streamed([sys.executable, "-c", code], feedback)


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("shim")
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{shim_wheel(folder)}\n")
    return requirements, ["--no-index", f"--find-links={folder}"]


def test_cancelled_install_keeps_the_earlier_environment(shim, tmp_path):
    """Cancel while pip runs: no temporary folder is left and the environment that was there
    (here a stand-in folder with its marker) is untouched. Success is tested end to end in
    test_install_engine."""
    from qgis.core import QgsProcessingException

    from chm_plugin.engine_env import MARKER, qgis_python
    from chm_plugin.installer import InstallPlan, install

    requirements, pip_args = shim
    venv = tmp_path / "canopygaps" / "engine-venv"
    venv.mkdir(parents=True)
    (venv / MARKER).write_text("{}")
    plan = InstallPlan(qgis_python(), venv, requirements, None, pip_args)
    feedback = ConsoleFeedback.create(cancel_on="Processing")
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        install(plan, feedback)
    assert any(line.startswith("Processing") for line in feedback.lines)  # pip's own output
    assert [p.name for p in venv.parent.iterdir()] == ["engine-venv"]
    assert [p.name for p in venv.iterdir()] == [MARKER]


def test_first_run_message_in_qgis_desktop(monkeypatch):
    from chm_plugin import plugin

    shown = []

    class Bar:
        def pushMessage(self, title, text, level, duration):
            shown.append(text)

    class Iface:
        def messageBar(self):
            return Bar()

    monkeypatch.setattr(plugin, "needs_install", lambda: True)
    instance = plugin.CanopyGapsPlugin(Iface())
    monkeypatch.setattr(instance, "initProcessing", lambda: None)
    instance.initGui()
    assert shown and "Install engine" in shown[0]
    monkeypatch.setattr(plugin, "needs_install", lambda: False)
    shown.clear()
    instance.initGui()
    assert not shown
