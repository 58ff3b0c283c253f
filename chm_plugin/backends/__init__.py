"""Ways of running the engine: in-process, subprocess, Docker (see :mod:`.base`)."""

from __future__ import annotations

from chm_plugin.backends.base import Backend, EngineRequest, Invocation, ProcessBackend


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name`` (None = the provider setting), configured from the settings."""
    from chm_plugin import settings

    current = settings.current()
    name = settings.backend_name(name) if name not in (None, "") else current.backend
    if name == "inprocess":
        from chm_plugin.backends.inprocess import InProcessBackend

        return InProcessBackend()
    if name == "docker":
        from chm_plugin.backends.docker_adapter import DockerBackend

        return DockerBackend(current)
    from chm_plugin.backends.subprocess_backend import SubprocessBackend

    return SubprocessBackend(current.python)


__all__ = ["Backend", "EngineRequest", "Invocation", "ProcessBackend", "get_backend"]
