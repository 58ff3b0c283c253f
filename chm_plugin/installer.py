"""Build the engine's Python: a venv in the QGIS profile with the pinned requirements.

Steps (each streamed to the feedback, Cancel stops the running step and removes everything):
create a venv with the Python that runs QGIS (``--system-site-packages``: GDAL, rasterio, numpy
of the system are reused), ``pip install -r`` the engine's pinned requirements, ``pip install``
the engine package (the wheel bundled in the plugin zip, or the source checkout), check that
every dependency imports, write a marker file. The venv is built under a temporary name next
to its place and renamed into place only when everything worked, so a failed or cancelled
install leaves a working earlier one untouched. (Console scripts in its ``bin`` folder keep
the temporary name in their first line; the plugin only runs ``python -m``.)
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from chm_plugin.engine_env import MARKER, clean_env, missing_modules, venv_python
from chm_plugin.paths import PLUGIN_DIR

POLL_S = 0.2
PIP = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]


@dataclass
class InstallPlan:
    """What to build where."""

    base_python: str
    venv: Path
    requirements: Path | None
    engine: Path | None
    pip_args: list[str] = field(default_factory=list)


def bundled_requirements() -> Path | None:
    """The engine's pinned requirements: bundled in the zip, or the checkout's."""
    for path in (
        PLUGIN_DIR / "vendor" / "requirements.txt",
        PLUGIN_DIR.parent / "requirements.txt",
    ):
        if path.is_file():
            return path
    return None


def bundled_engine() -> Path | None:
    """The engine package to install: the wheel in the zip, or the source checkout."""
    wheels = sorted((PLUGIN_DIR / "vendor" / "wheels").glob("canopygaps-*.whl"))
    if wheels:
        return wheels[-1]
    root = PLUGIN_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "engine").is_dir() else None


def _reader(stream: IO[str], out: queue.Queue[str | None]) -> None:
    """Put each line of ``stream`` on ``out``, then None."""
    try:
        for line in iter(stream.readline, ""):
            out.put(line.rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)


def run_streamed(
    argv: list[str],
    feedback: QgsProcessingFeedback,
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Run ``argv`` (stdout and stderr merged), pushing each line to the feedback; returns
    (exit code, last lines). Cancel terminates it and raises QgsProcessingException."""
    feedback.pushCommandInfo(" ".join(argv))
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**clean_env(), "PYTHONUNBUFFERED": "1"},
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    tail: list[str] = []
    done = False
    while not done:
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            line = ""
        if line is None:
            done = True
        elif line:
            feedback.pushConsoleInfo(line)
            tail = [*tail[-40:], line]
            if on_line is not None:
                on_line(line)
        if feedback.isCanceled():
            _stop(proc)
            raise QgsProcessingException("Cancelled by the user; nothing was installed.")
    rc = proc.wait()
    _close_stdout(proc)
    return rc, tail


def _close_stdout(proc: subprocess.Popen[str]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    _close_stdout(proc)


class PipProgress:
    """Maps pip's output lines onto a progress range (pip cannot say how much is left)."""

    def __init__(self, feedback: QgsProcessingFeedback, start: float, end: float) -> None:
        self.feedback, self.start, self.end, self.seen = feedback, start, end, 0

    def __call__(self, line: str) -> None:
        span = self.end - self.start
        if line.startswith(("Collecting", "Processing", "Requirement already satisfied")):
            self.seen += 1
            self.feedback.setProgress(self.start + 0.6 * span * (1 - 0.9**self.seen))
        elif line.startswith("Installing collected packages"):
            self.feedback.setProgress(self.start + 0.7 * span)
        elif line.startswith("Successfully installed"):
            self.feedback.setProgress(self.end)


def _failed(what: str, tail: list[str], hint: str) -> QgsProcessingException:
    errors = [s for s in tail if s.startswith("ERROR") or "Error" in s] or tail[-3:]
    return QgsProcessingException(f"{what} failed: {' '.join(errors[-3:])}\n{hint}")


PIP_HINT = (
    "Check the network connection (pip downloads from the Python Package Index), or give pip "
    "what it needs with 'Extra pip arguments' (e.g. an index URL or --find-links to a folder "
    "of wheels). The log above holds pip's full output."
)


def _create(plan: InstallPlan, tmp: Path, feedback: QgsProcessingFeedback) -> Path:
    feedback.setProgressText("Creating the engine's Python")
    rc, tail = run_streamed(
        [plan.base_python, "-m", "venv", "--system-site-packages", str(tmp)], feedback
    )
    if rc != 0:
        raise _failed(
            f"Creating a Python environment with {plan.base_python}",
            tail,
            "That Python cannot create virtual environments: on Debian/Ubuntu install the "
            "python3-venv package, or choose another Python with 'Python to build from'.",
        )
    return venv_python(tmp)


def _pip(
    python: Path,
    args: list[str],
    plan: InstallPlan,
    feedback: QgsProcessingFeedback,
    span: tuple[float, float],
    what: str,
) -> None:
    feedback.setProgressText(what)
    progress = PipProgress(feedback, *span)
    rc, tail = run_streamed([str(python), *PIP, *args, *plan.pip_args], feedback, progress)
    if rc != 0:
        raise _failed(what, tail, PIP_HINT)


def _marker(plan: InstallPlan, python: Path) -> dict[str, Any]:
    from chm_plugin.provider import plugin_version

    return {
        "format": "canopygaps-engine-venv",
        "plugin_version": plugin_version(),
        "base_python": plan.base_python,
        "python": str(python),
        "requirements": str(plan.requirements) if plan.requirements else None,
        "engine": str(plan.engine) if plan.engine else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def install(plan: InstallPlan, feedback: QgsProcessingFeedback) -> Path:
    """Build the venv of ``plan``; returns its interpreter (under the final name)."""
    plan.venv.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.venv.with_name(f".{plan.venv.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        python = _create(plan, tmp, feedback)
        feedback.setProgress(10)
        if plan.requirements is not None:
            args = ["-r", str(plan.requirements)]
            _pip(python, args, plan, feedback, (10, 80), "Installing the engine's packages")
        if plan.engine is not None:
            _pip(python, [str(plan.engine)], plan, feedback, (80, 95), "Installing the engine")
        feedback.setProgressText("Checking the engine's Python")
        missing = missing_modules(str(python))
        if missing:
            raise QgsProcessingException(
                f"After installing, the new Python still lacks {', '.join(missing)}.\n{PIP_HINT}"
            )
        (tmp / MARKER).write_text(json.dumps(_marker(plan, python), indent=1), encoding="utf-8")
        _swap_in(tmp, plan.venv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    feedback.setProgress(100)
    return venv_python(plan.venv)


def python_version(python: str) -> str | None:
    """'3.11' of ``python``, or None when it does not run."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def qgis_version_tag() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"
