"""The engine's child process: start it, read its JSON-lines events, honour Cancel.

:func:`start_child` starts the command of an :class:`~chm_plugin.backends.base.Invocation`
with piped stdout and stderr; :class:`ChildWatch` reads both pipes in threads until the child
exited and the pipes drained, hands each event on stdout to a callback, shows other stdout lines
in the console and keeps the last stderr lines. Cancel (the feedback's) terminates the child
(SIGTERM: the engine stops at its next check and removes partial outputs), runs the
invocation's stop command (``docker stop``) and kills the child if it is still alive
``KILL_AFTER_S`` seconds later. :mod:`chm_plugin.runner` turns the outcome into a result or a
``QgsProcessingException``.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from chm_plugin.backends.base import Invocation, ProcessBackend

KILL_AFTER_S = 5.0
POLL_S = 0.1


def format_argv(argv: list[str]) -> str:
    """``argv`` as one shell-quoted line, for the log."""
    if os.name == "nt":
        return subprocess.list2cmdline(argv)
    return " ".join(shlex.quote(a) for a in argv)


def _reader(stream: IO[str], tag: str, out: queue.Queue[tuple[str, str | None]]) -> None:
    """Put ``(tag, line)`` for each line of ``stream`` on ``out``, then ``(tag, None)``."""
    try:
        for line in iter(stream.readline, ""):
            out.put((tag, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        out.put((tag, None))


def _start_stop_command(argv: list[str], feedback: QgsProcessingFeedback) -> threading.Thread:
    """Run ``argv`` (e.g. ``docker stop``) in the background; returns its thread."""
    feedback.pushCommandInfo(format_argv(argv))

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


def start_child(invocation: Invocation, backend: ProcessBackend, cwd: str) -> subprocess.Popen[str]:
    """Start the engine child with piped, line-buffered UTF-8 stdout and stderr."""
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        kwargs["start_new_session"] = True  # a Ctrl+C in a terminal reaches QGIS only
    try:
        return subprocess.Popen(
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


def _event_of(line: str) -> dict[str, Any] | None:
    """The JSON-lines event on a stdout line, or None for any other output."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


class ChildWatch:
    """Reads a running engine child's stdout and stderr until it exits, and honours Cancel.

    Events go to ``on_event`` (translated first when the invocation says so); other stdout
    lines go to the console; the last stderr lines are kept for the failure message. Cancel
    terminates the child, runs the invocation's stop command and kills the child when it is
    still alive ``KILL_AFTER_S`` seconds later.
    """

    def __init__(
        self,
        proc: subprocess.Popen[str],
        invocation: Invocation,
        on_event: Callable[[dict[str, Any]], None],
        feedback: QgsProcessingFeedback,
    ) -> None:
        self.proc = proc
        self.invocation = invocation
        self.on_event = on_event
        self.feedback = feedback
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
        self.cancel_at: float | None = None
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._open_streams = 2
        self._stopper: threading.Thread | None = None
        self._exited_at: float | None = None
        self._threads = [
            threading.Thread(target=_reader, args=(proc.stdout, "out", self._lines), daemon=True),
            threading.Thread(target=_reader, args=(proc.stderr, "err", self._lines), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def watch(self) -> int:
        """Follow the child until it exited and its pipes drained; returns its exit code."""
        while True:
            self._take_line()
            self._cancel_if_asked()
            if self._finished():
                break
        return self._close()

    def _take_line(self) -> None:
        try:
            tag, line = self._lines.get(timeout=POLL_S)
        except queue.Empty:
            return
        if line is None:
            self._open_streams -= 1
        elif tag == "err":
            self.stderr_tail.append(line)
        else:
            self._stdout_line(line)

    def _stdout_line(self, line: str) -> None:
        event = _event_of(line)
        if event is None:
            if line.strip():
                self.feedback.pushConsoleInfo(line)
            return
        if self.invocation.translate_event is not None:
            event = self.invocation.translate_event(event)
        self.on_event(event)

    def _cancel_if_asked(self) -> None:
        alive = self.proc.poll() is None
        if self.feedback.isCanceled() and self.cancel_at is None and alive:
            self.cancel_at = time.monotonic()
            self.feedback.pushInfo("Cancelling the engine...")
            self.proc.terminate()
            if self.invocation.stop_argv:
                self._stopper = _start_stop_command(self.invocation.stop_argv, self.feedback)
        if (
            self.cancel_at is not None
            and self.proc.poll() is None
            and time.monotonic() - self.cancel_at > KILL_AFTER_S
        ):
            self.proc.kill()

    def _finished(self) -> bool:
        if self.proc.poll() is None:
            return False
        self._exited_at = self._exited_at or time.monotonic()
        # Wait for both pipes to drain, unless a grandchild holds them open.
        return self._open_streams <= 0 or time.monotonic() - self._exited_at > 2.0

    def _close(self) -> int:
        rc = self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=1.0)
        if self._stopper is not None:
            self._stopper.join(timeout=KILL_AFTER_S + 5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return rc
