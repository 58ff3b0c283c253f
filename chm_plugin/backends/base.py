"""The backend interface between the Processing algorithms and the engine.

An algorithm builds one :class:`EngineRequest` (an engine command, its params, and which paths
it reads and writes). A backend either runs it in this process (:class:`InProcessBackend`,
``run``) or says how to start a child process that speaks the engine's JSON-lines protocol
(:class:`ProcessBackend`, ``invocation``): ``chm_plugin.runner`` drives every such child the
same way (progress, log, result, error events on stdout; cancel = terminate, then kill).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qgis.core import QgsProcessingFeedback

REQUEST_VERSION = 1


@dataclass
class EngineRequest:
    """One engine command with its params, plus the file paths it reads and writes.

    ``targets`` (output parameter -> :class:`chm_plugin.outputs.OutputTarget`) are outputs the
    plugin converts after the run; ``key_names`` (engine setting -> "'Label' (NAME)") lets
    messages name the parameter instead of the engine setting. Neither is sent to the engine.
    """

    command: str
    params: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    targets: dict[str, Any] = field(default_factory=dict)
    key_names: dict[str, str] = field(default_factory=dict)

    def with_absolute_paths(self, cwd: str | None = None) -> EngineRequest:
        """A copy whose relative input/output paths are absolute (resolved against ``cwd``).

        The engine runs in a private working folder (and in Docker under other paths), so a
        relative path typed in ``qgis_process`` or a model must be resolved where it was given.
        Every occurrence of a listed path in ``params`` is replaced.
        """
        base = cwd or os.getcwd()
        mapping = {
            p: os.path.normpath(os.path.join(base, os.path.expanduser(p)))
            for p in (*self.inputs, *self.outputs)
            if p and not os.path.isabs(os.path.expanduser(p))
        }

        def fix(value: Any) -> Any:
            if isinstance(value, str):
                return mapping.get(value, value)
            if isinstance(value, list):
                return [fix(v) for v in value]
            if isinstance(value, dict):
                return {k: fix(v) for k, v in value.items()}
            return value

        return EngineRequest(
            self.command,
            fix(self.params),
            [mapping.get(p, p) for p in self.inputs],
            [mapping.get(p, p) for p in self.outputs],
            dict(self.targets),
            dict(self.key_names),
        )

    def to_dict(self) -> dict[str, Any]:
        """The request mapping of ``engine.api.run_request``."""
        return {"version": REQUEST_VERSION, "command": self.command, "params": self.params}

    def to_json(self) -> str:
        """The request as indented JSON (the subprocess backend's request file)."""
        return json.dumps(self.to_dict(), indent=1)


def _same(path: str) -> str:
    return path


@dataclass
class Invocation:
    """How to start the engine as a child process for one request.

    ``argv`` runs the engine's ``request ... --jsonl`` command; ``stop_argv`` (optional) is run
    on cancel in addition to terminating the child (``docker stop``); ``translate_back`` maps
    paths in the result back to this machine's paths; ``env`` is the child's full environment.
    """

    argv: list[str]
    env: dict[str, str] | None = None
    stop_argv: list[str] | None = None
    translate_back: Callable[[str], str] = _same
    translate_event: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    temp_files: list[str] = field(default_factory=list)


class Backend:
    """A way of running engine requests."""

    name = "base"
    label = "Base"

    def check(self) -> None:
        """Raise ``QgsProcessingException`` with a fix-it message when unusable."""

    def describe(self) -> dict[str, str]:
        """What this backend runs (interpreter, image...), for diagnostics and logs."""
        return {"backend": self.name}

    def run(
        self,
        request: EngineRequest,
        feedback: QgsProcessingFeedback,
        on_event: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Run ``request`` in this process (backends that do override it)."""
        raise NotImplementedError


class ProcessBackend(Backend):
    """A backend whose engine runs in a child process driven by ``chm_plugin.runner``."""

    def invocation(self, request: EngineRequest, workdir: str) -> Invocation:
        """The child process for ``request``; ``workdir`` is a private temporary folder."""
        raise NotImplementedError

    def explain_failure(self, stderr: str) -> str:
        """A fix-it hint for a child that died without an engine error event."""
        return ""

    def failure_line(self, stderr_lines: list[str]) -> str:
        """The stderr line that says why the child died (default: the last non-empty one)."""
        return next((s for s in reversed(stderr_lines) if s.strip()), "")
