"""GDAL's error state while writing: failures GDAL reports without raising.

GDAL reports most write failures (a full disk, a file-size limit) through its error handler
while the call itself returns: a tile flushed from the block cache, or the TIFF directory
written when the file is closed. rasterio raises for none of these, so a broken file would look
like a success. :func:`gdal_failures` runs a block inside a ``rasterio.Env`` (whose error
handler logs every GDAL failure of the calling thread to the ``rasterio._env`` logger, with
rasterio built on any GDAL) and collects those failures; :class:`WriteGuard` turns them into an
:class:`~engine.errors.OutputError` naming the destination.

GDAL re-reports a failed flush of a dirty block, whichever thread flushed it, at the next write
or flush of that band in the writing thread, so guarding the writer's own calls (writes and
close) sees every failure of its file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import rasterio
import rasterio.env

_LOGGER = "rasterio._env"
_PREFIX = "GDAL signalled an error"
_lock = threading.Lock()
_state = {"active": 0, "level": logging.NOTSET}


class _Collector(logging.Handler):
    """Keeps the GDAL failures logged by one thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        text = str(record.msg)
        if text.startswith(_PREFIX) and isinstance(record.args, tuple) and len(record.args) > 1:
            self.messages.append(str(record.args[1]))
        elif record.levelno >= logging.ERROR:  # CE_Fatal
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def gdal_failures() -> Iterator[list[str]]:
    """Collect (into the yielded list) the GDAL failures of this thread while the block runs."""
    logger = logging.getLogger(_LOGGER)
    collector = _Collector()
    with _lock:
        if _state["active"] == 0:
            _state["level"] = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)  # rasterio logs GDAL failures at INFO
        _state["active"] += 1
    logger.addHandler(collector)
    try:
        # An Env costs ~0.6 ms to enter: writers hold one for their whole life (see
        # RasterWriter), so a guarded call only needs its own outside one.
        with contextlib.nullcontext() if rasterio.env.hasenv() else rasterio.Env():
            yield collector.messages
    finally:
        logger.removeHandler(collector)
        with _lock:
            _state["active"] -= 1
            if _state["active"] == 0:
                logger.setLevel(_state["level"])


class WriteGuard:
    """Run a writer's GDAL calls and raise :class:`OutputError` when GDAL reported a failure.

    ``path`` is the file being written (a temporary name is shown as its destination)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        """Guard one call: any GDAL failure (or exception) becomes an ``OutputError``."""
        from engine.errors import EngineError
        from engine.io.files import output_failure

        with gdal_failures() as failures:
            try:
                yield
            except EngineError:
                raise
            except Exception as exc:
                raise output_failure(self.path, _first(failures) or str(exc)) from exc
        if failures:
            raise output_failure(self.path, _first(failures))

    def failure(self, reason: str) -> Exception:
        """The ``OutputError`` for a failure found without GDAL's help."""
        from engine.io.files import output_failure

        return output_failure(self.path, reason)


def _first(failures: list[str]) -> str:
    """The most telling GDAL failure: one with an OS reason (full disk...), else the first."""
    from engine.io.failures import failure_kind

    for text in failures:
        if failure_kind(None, text) is not None:
            return text
    return failures[0] if failures else ""
