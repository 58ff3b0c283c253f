"""The one runner: starts the engine for a request, streams progress, honours Cancel.

Every algorithm builds one :class:`~chm_plugin.backends.base.EngineRequest` and calls
:func:`run_engine`. In-process requests go through ``engine.api.run_request`` with a reporter
bridging to the feedback; subprocess and Docker requests start a child whose stdout carries the
engine's JSON-lines events::

    {"event": "progress", "value": 0.42, "stage": "infer"}
    {"event": "log", "level": "info", "message": "..."}
    {"event": "result", "data": {...}}
    {"event": "error", "type": "InputError", "message": "...", "hint": "..."}

stderr is kept (last lines) and shown when the run fails. Cancel terminates the child (SIGTERM:
the engine stops at its next check and removes partial outputs), runs the backend's stop command
(``docker stop``) and kills the child if it is still alive a few seconds later. Failures become a
``QgsProcessingException`` holding the engine's message and hint.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProcessingUtils

from chm_plugin.backends import EngineRequest, ProcessBackend, get_backend
from chm_plugin.backends.base import Backend
from chm_plugin.engine_env import INSTALL_ACTION
from chm_plugin.messages import to_qgis

KILL_AFTER_S = 5.0
POLL_S = 0.1
CANCELLED_MESSAGE = "Cancelled by the user; partial outputs were removed."


class EventSink:
    """Turns engine events into feedback calls and remembers the result or error."""

    def __init__(
        self, feedback: QgsProcessingFeedback, key_names: dict[str, str] | None = None
    ) -> None:
        self.feedback = feedback
        self.key_names = dict(key_names or {})
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.stage = ""
        self.progress_events = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        fb = self.feedback
        if kind == "progress":
            self.progress_events += 1
            stage = str(event.get("stage") or "")
            if stage and stage != self.stage:
                self.stage = stage
                fb.setProgressText(stage)
            fb.setProgress(100.0 * float(event.get("value", 0.0)))
        elif kind == "log":
            level = event.get("level", "info")
            message = to_qgis(str(event.get("message", "")), self.key_names)
            if level == "warning":
                fb.pushWarning(message)
            elif level == "error":
                fb.reportError(message, False)
            elif level == "debug":
                fb.pushDebugInfo(message)
            else:
                fb.pushInfo(message)
        elif kind == "result":
            self.result = dict(event.get("data") or {})
        elif kind == "error":
            self.error = dict(event)


def error_text(error: dict[str, Any], key_names: dict[str, str] | None = None) -> str:
    """'<message>\\n<hint>' of an engine error event, in QGIS terms."""
    message = str(error.get("message") or error.get("type") or "The engine failed.")
    hint = str(error.get("hint") or "")
    if error.get("type") == "MissingDependencyError" and "pip install" not in hint:
        hint = f"{hint} {INSTALL_ACTION}".strip()
    message, hint = to_qgis(message, key_names), to_qgis(hint, key_names)
    return f"{message}\n{hint}" if hint else message


def _format_argv(argv: list[str]) -> str:
    if os.name == "nt":
        return subprocess.list2cmdline(argv)
    return " ".join(shlex.quote(a) for a in argv)


PARTIALS = (".{stem}.part-*", ".{stem}.staged-*", "..{stem}.staged-*", ".{stem}.parts")
"""The engine's temporaries of an output (written, staged for the end of the run, scratch)."""


def _remove_partials(outputs: list[str]) -> None:
    """Delete the engine's temporaries next to outputs (left only by a killed engine)."""
    for out in outputs:
        path = Path(out)
        if not path.parent.is_dir():
            continue
        found = {
            p for pattern in PARTIALS for p in path.parent.glob(pattern.format(stem=path.stem))
        }
        for partial in sorted(found):
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)


def _translate(value: Any, translate) -> Any:
    if isinstance(value, dict):
        return {k: _translate(v, translate) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, translate) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        try:
            return translate(value)
        except Exception:
            return value
    return value


def run_engine(
    request: EngineRequest,
    feedback: QgsProcessingFeedback | None = None,
    backend: str | Backend | None = None,
) -> dict[str, Any]:
    """Run ``request`` with ``backend`` (name, object, or None = provider setting)."""
    feedback = feedback or QgsProcessingFeedback()
    backend_obj = backend if isinstance(backend, Backend) else get_backend(backend)
    feedback.pushInfo(
        f"canopygaps {request.command} via the {backend_obj.label} backend "
        f"({', '.join(f'{k}={v}' for k, v in backend_obj.describe().items() if k != 'backend')})"
    )
    if isinstance(backend_obj, ProcessBackend):
        return _run_process(request, backend_obj, feedback)
    return _run_in_process(request, backend_obj, feedback)


def _run_in_process(request: EngineRequest, backend, feedback) -> dict[str, Any]:
    sink = EventSink(feedback, request.key_names)
    feedback.pushCommandInfo(f"engine.api.run_request({request.to_json()})")
    try:
        result = backend.run(request, feedback, sink)
    except QgsProcessingException:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if name == "Cancelled" or feedback.isCanceled():
            raise QgsProcessingException(CANCELLED_MESSAGE) from exc
        message = getattr(exc, "message", None)
        hint = getattr(exc, "hint", "")
        if message is None:  # not an engine error: a bug or a broken dependency
            feedback.pushDebugInfo(traceback.format_exc())
            message = f"{name}: {exc}"
        if isinstance(exc, ImportError):  # MissingDependencyError too
            from chm_plugin.backends.inprocess import INSTALL_HINT

            hint = INSTALL_HINT
        error = {"message": message, "hint": hint, "type": name}
        raise QgsProcessingException(error_text(error, request.key_names)) from exc
    if feedback.isCanceled():
        raise QgsProcessingException(CANCELLED_MESSAGE)
    return dict(result or {})


def _reader(stream, tag: str, out: queue.Queue) -> None:
    try:
        for line in iter(stream.readline, ""):
            out.put((tag, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        out.put((tag, None))


def _start_stop_command(argv: list[str], feedback) -> threading.Thread:
    """Run ``argv`` (e.g. ``docker stop``) in the background; returns its thread."""
    feedback.pushCommandInfo(_format_argv(argv))

    def stop() -> None:
        try:
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            feedback.pushWarning(f"The stop command failed: {exc}")

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


def _run_process(request: EngineRequest, backend: ProcessBackend, feedback) -> dict[str, Any]:
    backend.check()
    base = QgsProcessingUtils.tempFolder()
    os.makedirs(base, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="canopygaps-", dir=base)
    try:
        invocation = backend.invocation(request, workdir)
        return _drive(request, backend, invocation, feedback, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _drive(request, backend: ProcessBackend, invocation, feedback, cwd: str) -> dict[str, Any]:
    feedback.pushCommandInfo(_format_argv(invocation.argv))
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        kwargs["start_new_session"] = True  # a Ctrl+C in a terminal reaches QGIS only
    try:
        proc = subprocess.Popen(
            invocation.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=invocation.env,
            cwd=cwd,  # never QGIS's working folder: 'python -m' would import from it
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **kwargs,
        )
    except OSError as exc:
        raise QgsProcessingException(
            f"Could not start the engine ({invocation.argv[0]}): {exc.strerror or exc}. "
            f"{backend.explain_failure(str(exc))}"
        ) from exc

    lines: queue.Queue = queue.Queue()
    threads = [
        threading.Thread(target=_reader, args=(proc.stdout, "out", lines), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, "err", lines), daemon=True),
    ]
    for thread in threads:
        thread.start()
    sink = EventSink(feedback, request.key_names)
    stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
    open_streams = 2
    cancel_at: float | None = None
    stopper: threading.Thread | None = None
    exited_at: float | None = None
    while True:
        try:
            tag, line = lines.get(timeout=POLL_S)
        except queue.Empty:
            tag, line = None, None
        if tag is not None:
            if line is None:
                open_streams -= 1
            elif tag == "err":
                stderr_tail.append(line)
            elif line.startswith("{"):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    feedback.pushConsoleInfo(line)
                else:
                    if isinstance(event, dict) and "event" in event:
                        if invocation.translate_event is not None:
                            event = invocation.translate_event(event)
                        sink(event)
                    else:
                        feedback.pushConsoleInfo(line)
            elif line.strip():
                feedback.pushConsoleInfo(line)
        if feedback.isCanceled() and cancel_at is None and proc.poll() is None:
            cancel_at = time.monotonic()
            feedback.pushInfo("Cancelling the engine...")
            proc.terminate()
            if invocation.stop_argv:
                stopper = _start_stop_command(invocation.stop_argv, feedback)
        if (
            cancel_at is not None
            and proc.poll() is None
            and time.monotonic() - cancel_at > KILL_AFTER_S
        ):
            proc.kill()
        if proc.poll() is not None:
            exited_at = exited_at or time.monotonic()
            # Wait for both pipes to drain, unless a grandchild holds them open.
            if open_streams <= 0 or time.monotonic() - exited_at > 2.0:
                break
    rc = proc.wait()
    for thread in threads:
        thread.join(timeout=1.0)
    if stopper is not None:
        stopper.join(timeout=KILL_AFTER_S + 5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()

    if cancel_at is not None or rc == 130:
        _remove_partials(request.outputs)
        raise QgsProcessingException(CANCELLED_MESSAGE)
    if rc == 0 and sink.result is not None:
        result = sink.result
        if invocation.translate_event is None and invocation.translate_back is not None:
            result = _translate(result, invocation.translate_back)
        return result
    stderr = "\n".join(stderr_tail)
    if stderr:
        feedback.pushConsoleInfo("Engine stderr (last lines):\n" + stderr)
    if sink.error is not None:
        error = dict(sink.error)
        if error.get("type") in ("ModuleNotFoundError", "ImportError") and not error.get("hint"):
            error["hint"] = backend.explain_failure(str(error.get("message") or ""))
        raise QgsProcessingException(error_text(error, request.key_names))
    hint = backend.explain_failure(stderr)
    last = backend.failure_line(list(stderr_tail))
    raise QgsProcessingException(
        f"The engine exited with code {rc} without a result"
        + (f": {last}" if last else ".")
        + (f"\n{hint}" if hint else "")
    )
