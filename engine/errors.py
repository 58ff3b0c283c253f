"""Exceptions raised by the engine.

Every error says what went wrong and what to do about it. Each class also inherits the
built-in type that matches it (``ValueError`` for bad input, ``ImportError`` for a missing
dependency...), so callers that only know the built-ins still catch them.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of all engine errors; ``hint`` says how to fix the problem."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}".strip())


class InputError(EngineError, ValueError):
    """An input raster, vector or parameter is unusable as given."""


class CRSError(InputError):
    """Missing, geographic or mismatched coordinate reference system."""


class GridError(InputError):
    """Rasters whose grids (size, transform, pixel size) do not fit together."""


class NoDataError(InputError):
    """A raster or window with no valid pixel where some are needed."""


class ConfigError(EngineError, ValueError):
    """A configuration key that is unknown, missing or has a bad value."""


class ModelFileError(EngineError, ValueError):
    """A model file that is corrupt, foreign or from an unsupported format version."""


class OutputError(EngineError, OSError):
    """An output could not be written (full disk, file-size limit, read-only or lost folder);
    nothing was left at its destination."""


class MissingDependencyError(EngineError, ImportError):
    """An optional dependency is not installed."""


class Cancelled(EngineError):
    """The run was cancelled by the user; partial outputs have been removed."""

    def __init__(self, message: str = "Cancelled by the user.", hint: str = "") -> None:
        super().__init__(message, hint)


def require(module: str, purpose: str, install: str | None = None) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``purpose``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = install or module
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}', which is not installed ({exc}).",
            f"Install it into the engine's Python: python -m pip install {pkg}",
        ) from exc
