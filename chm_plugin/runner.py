"""The one runner: starts the engine for a request, streams progress, honours Cancel.

Every algorithm builds one :class:`~chm_plugin.backends.base.EngineRequest` and calls
:func:`run_engine`. In-process requests go through ``engine.api.run_request`` with a reporter
bridging to the feedback; subprocess and Docker requests start a child whose stdout carries the
engine's JSON-lines events::

    {"event": "progress", "value": 0.42, "stage": "infer"}
    {"event": "log", "level": "info", "message": "..."}
    {"event": "result", "data": {...}}
    {"event": "error", "type": "InputError", "message": "...", "hint": "..."}

stderr is kept (last lines) and shown when the run fails. :mod:`chm_plugin.child` starts and
watches the child; on Cancel it terminates the child (SIGTERM: the engine stops at its next check
and removes partial outputs), runs the backend's stop command (``docker stop``) and kills the
child if it is still alive a few seconds later; the runner then removes the temporaries a killed
engine left. Failures become a ``QgsProcessingException`` holding the engine's message and hint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProcessingUtils

from chm_plugin.backends import EngineRequest, ProcessBackend, get_backend
from chm_plugin.backends.base import Backend, Invocation
from chm_plugin.child import ChildWatch, format_argv, start_child
from chm_plugin.engine_env import INSTALL_ACTION
from chm_plugin.messages import to_qgis

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


def _translate(value: Any, translate: Callable[[str], str]) -> Any:
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


def _run_in_process(
    request: EngineRequest, backend: Backend, feedback: QgsProcessingFeedback
) -> dict[str, Any]:
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


def _run_process(
    request: EngineRequest, backend: ProcessBackend, feedback: QgsProcessingFeedback
) -> dict[str, Any]:
    backend.check()
    base = QgsProcessingUtils.tempFolder()
    os.makedirs(base, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="canopygaps-", dir=base)
    try:
        invocation = backend.invocation(request, workdir)
        return _drive(request, backend, invocation, feedback, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _drive(
    request: EngineRequest,
    backend: ProcessBackend,
    invocation: Invocation,
    feedback: QgsProcessingFeedback,
    cwd: str,
) -> dict[str, Any]:
    """Run the child of ``invocation`` to its end: its result, or a QgsProcessingException."""
    feedback.pushCommandInfo(format_argv(invocation.argv))
    proc = start_child(invocation, backend, cwd)
    sink = EventSink(feedback, request.key_names)
    child = ChildWatch(proc, invocation, sink, feedback)
    rc = child.watch()
    if child.cancel_at is not None or rc == 130:
        _remove_partials(request.outputs)
        raise QgsProcessingException(CANCELLED_MESSAGE)
    if rc == 0 and sink.result is not None:
        result = sink.result
        if invocation.translate_event is None and invocation.translate_back is not None:
            result = _translate(result, invocation.translate_back)
        return result
    raise _failure(request, backend, sink, list(child.stderr_tail), rc, feedback)


def _failure(
    request: EngineRequest,
    backend: ProcessBackend,
    sink: EventSink,
    stderr_tail: list[str],
    rc: int,
    feedback: QgsProcessingFeedback,
) -> QgsProcessingException:
    """The exception of a child that exited without a result: its engine error, else stderr."""
    stderr = "\n".join(stderr_tail)
    if stderr:
        feedback.pushConsoleInfo("Engine stderr (last lines):\n" + stderr)
    if sink.error is not None:
        error = dict(sink.error)
        if error.get("type") in ("ModuleNotFoundError", "ImportError") and not error.get("hint"):
            error["hint"] = backend.explain_failure(str(error.get("message") or ""))
        return QgsProcessingException(error_text(error, request.key_names))
    hint = backend.explain_failure(stderr)
    last = backend.failure_line(stderr_tail)
    return QgsProcessingException(
        f"The engine exited with code {rc} without a result"
        + (f": {last}" if last else ".")
        + (f"\n{hint}" if hint else "")
    )
