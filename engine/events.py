"""Progress, log and cancel plumbing shared by every engine command.

A command receives a :class:`Reporter` and calls ``progress``, ``log`` and ``check_cancelled``.
The reporter decides where events go: nowhere (:class:`NullReporter`), a terminal
(:class:`ConsoleReporter`), JSON lines on stdout for the QGIS plugin's subprocess and Docker
backends (:class:`JsonLinesReporter`), or a callback (:class:`CallbackReporter`, in-process).

JSON-lines protocol (one object per line on stdout, UTF-8):

``{"event": "progress", "value": 0.42, "stage": "infer"}``  value in [0, 1]
``{"event": "log", "level": "info", "message": "..."}``     level: debug|info|warning|error
``{"event": "result", "data": {...}}``                      once, at the end of a success
``{"event": "error", "type": "InputError", "message": "...", "hint": "..."}``  once, on failure
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from engine.errors import Cancelled

PROTOCOL_VERSION = 1


class Reporter:
    """Base reporter: progress in [0, 1] over stages, logs and a cancel flag."""

    def __init__(self) -> None:
        self._cancel = threading.Event()

    # -- to be overridden ---------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        """Deliver one event (``event`` key plus payload)."""

    # -- API used by commands -----------------------------------------------------------
    def progress(self, value: float, stage: str = "") -> None:
        """Report overall progress ``value`` (0..1) within ``stage``; checks for cancel."""
        self.check_cancelled()
        self.emit(
            {"event": "progress", "value": round(min(max(value, 0.0), 1.0), 4), "stage": stage}
        )

    def log(self, message: str, level: str = "info") -> None:
        """Report a log line."""
        self.emit({"event": "log", "level": level, "message": message})

    def result(self, data: dict[str, Any]) -> None:
        """Report the final result of a successful command."""
        self.emit({"event": "result", "data": data})

    def error(self, exc: BaseException) -> None:
        """Report a failure."""
        self.emit(
            {
                "event": "error",
                "type": type(exc).__name__,
                "message": getattr(exc, "message", str(exc)),
                "hint": getattr(exc, "hint", ""),
            }
        )

    def cancel(self) -> None:
        """Ask the running command to stop at its next check."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`~engine.errors.Cancelled` if cancel was requested."""
        if self._cancel.is_set():
            raise Cancelled()

    def sub(self, start: float, end: float, stage: str = "") -> SubReporter:
        """A reporter whose progress 0..1 maps onto ``start..end`` of this one."""
        return SubReporter(self, start, end, stage)


class SubReporter(Reporter):
    """Maps progress of a sub-task onto a slice of its parent's range."""

    def __init__(self, parent: Reporter, start: float, end: float, stage: str = "") -> None:
        super().__init__()
        self.parent, self.start, self.end, self.stage = parent, start, end, stage

    def progress(self, value: float, stage: str = "") -> None:
        self.parent.progress(self.start + (self.end - self.start) * value, stage or self.stage)

    def emit(self, event: dict[str, Any]) -> None:
        self.parent.emit(event)

    def cancel(self) -> None:
        self.parent.cancel()

    @property
    def cancelled(self) -> bool:
        return self.parent.cancelled

    def check_cancelled(self) -> None:
        self.parent.check_cancelled()


class NullReporter(Reporter):
    """Discards every event (library use, tests)."""


class CallbackReporter(Reporter):
    """Calls ``callback(event)`` for each event; ``is_cancelled()`` polls an external flag."""

    def __init__(
        self,
        callback: Callable[[dict[str, Any]], None],
        is_cancelled: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self._callback = callback
        self._is_cancelled = is_cancelled

    def emit(self, event: dict[str, Any]) -> None:
        self._callback(event)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or bool(self._is_cancelled and self._is_cancelled())

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled()


class JsonLinesReporter(Reporter):
    """Writes the JSON-lines protocol to ``stream`` (stdout by default), flushing each line."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.1) -> None:
        super().__init__()
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._min_interval = min_interval
        self._last_progress = 0.0

    def emit(self, event: dict[str, Any]) -> None:
        if event["event"] == "progress":
            now = time.monotonic()
            if now - self._last_progress < self._min_interval and event["value"] < 1.0:
                return
            self._last_progress = now
        line = json.dumps(event, default=str, allow_nan=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class ConsoleReporter(Reporter):
    """Human-readable output on stderr: a one-line progress bar and log lines."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._verbose = verbose
        self._tty = self._stream.isatty()
        self._last = -1.0

    def emit(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "progress":
            value = event["value"]
            if self._tty:
                bar = "#" * int(value * 30)
                self._stream.write(f"\r[{bar:<30}] {value * 100:5.1f}% {event['stage']:<20}")
                self._stream.flush()
            elif value - self._last >= 0.1 or value >= 1.0:
                self._stream.write(f"{value * 100:5.1f}% {event['stage']}\n")
                self._last = value
        elif kind == "log":
            if event["level"] == "debug" and not self._verbose:
                return
            prefix = "\n" if self._tty else ""
            self._stream.write(f"{prefix}[{event['level']}] {event['message']}\n")
        elif kind == "error":
            self._stream.write(f"\nerror: {event['message']}\n")
            if event.get("hint"):
                self._stream.write(f"hint: {event['hint']}\n")
        self._stream.flush()


def install_signal_cancel(reporter: Reporter) -> None:
    """Turn SIGTERM/SIGINT into a cancel request, so partial outputs are cleaned up.

    The first signal asks the command to stop at its next check; a second one exits at once.
    Only callable from the main thread (the CLI).
    """

    def handler(signum: int, frame: object) -> None:
        if reporter.cancelled:
            raise SystemExit(128 + signum)
        reporter.cancel()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _ReporterHandler(logging.Handler):
    """Sends the engine's ``logging`` records (library code without a reporter) to a reporter."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning" if record.levelno >= logging.WARNING else "info"
        self.reporter.log(record.getMessage(), level)


@contextlib.contextmanager
def forward_logs(reporter: Reporter) -> Iterator[None]:
    """While the block runs, log records of the ``engine`` logger become reporter log events."""
    logger = logging.getLogger("engine")
    handler = _ReporterHandler(reporter)
    logger.addHandler(handler)
    previous, propagate = logger.level, logger.propagate
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        logger.propagate = propagate
