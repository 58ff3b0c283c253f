"""Docker backend: the ``docker run`` command of one engine request, and its path translation.

Pure Python (no qgis, no torch), so the plugin, the runner and the tests share it. The container
runs the engine CLI (image entry point ``canopygaps``) with ``request --json REQUEST --jsonl``
and speaks the same JSON-lines protocol as the subprocess backend, so the same runner reads it.

Mounts: the parent folder of each input is mounted read-only at ``/in/<n>``, the parent folder
of each output writable at ``/out/<n>`` (outputs are written to a temporary sibling and
renamed, so the folder, not only the file, must be writable); nothing else of the host is
visible. Every path in the request parameters is rewritten to its container path, and
:meth:`DockerInvocation.translate_result` maps the paths of the result back to host paths.

Cancel: send SIGTERM to the ``docker run`` process (the docker client forwards it; ``--init``
hands it to the engine, which cancels and removes partial outputs), and run
:func:`stop_container` (``docker stop -t 5 NAME``, then ``docker kill NAME``) in case the client
is already gone.

Example::

    inv = build_docker_run(request, DockerSettings(image="canopygaps:gpu", gpus=True),
                           input_paths=[dsm], output_paths=[out_tif])
    proc = subprocess.Popen(inv.argv, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        event = inv.translate_event(json.loads(line))
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONTAINER_INPUT_ROOT",
    "CONTAINER_OUTPUT_ROOT",
    "DockerInvocation",
    "DockerPathError",
    "DockerSettings",
    "Mount",
    "build_docker_run",
    "stop_container",
]

CONTAINER_INPUT_ROOT = "/in"
CONTAINER_OUTPUT_ROOT = "/out"
CONTAINER_LABEL = "org.canopygaps.backend=plugin"
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


class DockerPathError(ValueError):
    """A request path that the container cannot see, or that ``docker run -v`` cannot mount."""


@dataclass
class DockerSettings:
    """How the plugin runs the engine image."""

    image: str = "canopygaps:cpu"
    gpus: bool = False
    docker: str = "docker"  # the docker executable (name on PATH or full path)
    extra_args: list[str] = field(default_factory=list)  # inserted before the image name
    network: str | None = "none"  # the engine never needs the network; None keeps Docker's default


@dataclass(frozen=True)
class Mount:
    """One bind mount: a host folder at a container folder."""

    host: str
    container: str
    read_only: bool

    def volume_arg(self) -> str:
        """The ``-v`` value."""
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


def _is_windows(path: str) -> bool:
    return bool(_WINDOWS_PATH.match(path))


def _host_abspath(path: str) -> str:
    """Absolute, normalised host path (Windows-looking paths are normalised, never resolved)."""
    if _is_windows(path):
        return ntpath.normpath(path)
    return os.path.abspath(os.path.expanduser(path))


def _host_parent(path: str) -> str:
    return ntpath.dirname(path) if _is_windows(path) else os.path.dirname(path)


def _host_join(folder: str, rel: str) -> str:
    if not rel:
        return folder
    if _is_windows(folder):
        return ntpath.join(folder, *rel.split("/"))
    return posixpath.join(folder, rel)


def _host_relative(path: str, folder: str) -> str | None:
    """``path`` relative to ``folder`` with ``/`` separators, or None when outside it."""
    if _is_windows(path) != _is_windows(folder):
        return None
    if _is_windows(path):
        p, f = ntpath.normcase(path), ntpath.normcase(folder)
        if p == f:
            return ""
        prefix = f if f.endswith("\\") else f + "\\"
        return path[len(prefix) :].replace("\\", "/") if p.startswith(prefix) else None
    if path == folder:
        return ""
    prefix = folder if folder.endswith("/") else folder + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _container_relative(path: str, folder: str) -> str | None:
    if path == folder:
        return ""
    return path[len(folder) + 1 :] if path.startswith(folder + "/") else None


def _default_user() -> str | None:
    getuid, getgid = getattr(os, "getuid", None), getattr(os, "getgid", None)
    if getuid is None or getgid is None:  # Windows: Docker Desktop maps users itself
        return None
    return f"{getuid()}:{getgid()}"


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """Apply ``fn`` to every string inside dicts/lists/tuples (keys untouched)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_strings(v, fn) for v in value]
    return value


@dataclass
class DockerInvocation:
    """A ready-to-run ``docker run`` command and the path mapping it uses."""

    argv: list[str]
    container_name: str
    stop_argv: list[str]
    kill_argv: list[str]
    mounts: list[Mount]
    request: dict[str, Any]  # the request as the container sees it (container paths)

    # -- container -> host --------------------------------------------------------------
    def translate_back(self, path: str) -> str:
        """Host path of a container path under a mount; any other string is returned as is."""
        if not isinstance(path, str) or not path.startswith("/"):
            return path
        for mount in sorted(self.mounts, key=lambda m: len(m.container), reverse=True):
            rel = _container_relative(posixpath.normpath(path), mount.container)
            if rel is not None:
                return _host_join(mount.host, rel)
        return path

    def translate_result(self, result: dict[str, Any]) -> dict[str, Any]:
        """A copy of a result (``data`` of the ``result`` event) with host paths."""
        return _map_strings(result, self.translate_back)

    def translate_text(self, text: str) -> str:
        """Replace container paths inside free text (log and error messages)."""
        roots = "|".join(re.escape(r) for r in (CONTAINER_INPUT_ROOT, CONTAINER_OUTPUT_ROOT))
        pattern = re.compile(rf"(?<![\w/.])(?:{roots})/\d+(?:/[^\s'\"`,;:()\[\]{{}}]*)?")
        return pattern.sub(lambda m: self.translate_back(m.group(0)), text)

    def translate_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A JSON-lines event with host paths: result data, log and error messages."""
        out = dict(event)
        kind = event.get("event")
        if kind == "result" and isinstance(event.get("data"), dict):
            out["data"] = self.translate_result(event["data"])
        elif kind in ("log", "error"):
            for key in ("message", "hint"):
                if isinstance(event.get(key), str):
                    out[key] = self.translate_text(event[key])
        return out


class _Translator:
    """Host -> container mapping of the request's paths."""

    def __init__(
        self, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]], mounts: list[Mount]
    ) -> None:
        # (original string, host abspath) of each declared path, and the mounts.
        self.inputs = inputs
        self.outputs = outputs
        self.mounts = mounts

    def _in_mount(self, host: str, read_only: bool | None) -> str | None:
        candidates = [m for m in self.mounts if read_only is None or m.read_only == read_only]
        for mount in sorted(candidates, key=lambda m: len(m.host), reverse=True):
            rel = _host_relative(host, mount.host)
            if rel is not None:
                return posixpath.join(mount.container, rel) if rel else mount.container
        return None

    def __call__(self, value: str) -> str:
        if not value or value.startswith("/vsi"):  # GDAL virtual file systems: not host paths
            return value
        looks_absolute = value.startswith("/") or _is_windows(value)
        for declared, read_only in ((self.outputs, False), (self.inputs, True)):
            for original, host in declared:
                if value == original or (looks_absolute and _host_abspath(value) == host):
                    found = self._in_mount(host, read_only)
                    if found is not None:
                        return found
        if not looks_absolute:
            return value  # names, numbers-as-text, relative strings: not paths
        host = _host_abspath(value)
        found = self._in_mount(host, False) or self._in_mount(host, True)
        if found is None:
            raise DockerPathError(
                f"The request path {value!r} is neither an input nor an output of this run, so "
                "the container cannot see it; pass it in input_paths or output_paths."
            )
        return found


def _check_mountable(host: str) -> None:
    if not _is_windows(host) and (":" in host or "," in host):
        raise DockerPathError(
            f"Docker cannot mount the folder {host!r} (':' or ',' in the path); "
            "move the data to a folder without them."
        )


class _Mounts:
    """The bind mounts of one run: one per (host folder, read-only), numbered per kind."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []
        self._by_key: dict[tuple[str, bool], Mount] = {}

    def add(self, host_dir: str, read_only: bool) -> Mount:
        """The mount of ``host_dir`` (``/in/<n>`` read-only, else ``/out/<n>``), made once."""
        key = (host_dir, read_only)
        if key not in self._by_key:
            _check_mountable(host_dir)
            root = CONTAINER_INPUT_ROOT if read_only else CONTAINER_OUTPUT_ROOT
            index = sum(1 for m in self.mounts if m.read_only == read_only)
            self._by_key[key] = Mount(host_dir, f"{root}/{index}", read_only)
            self.mounts.append(self._by_key[key])
        return self._by_key[key]


def _docker_argv(
    settings: DockerSettings, name: str, user: str | None, mounts: list[Mount], request_json: str
) -> list[str]:
    """``docker run --rm --init ...`` with the inputs' mounts first, then the outputs'."""
    argv = [settings.docker, "run", "--rm", "--init", "--name", name, "--label", CONTAINER_LABEL]
    if settings.network:
        argv += ["--network", settings.network]
    if user:
        argv += ["-u", user]
    if settings.gpus:
        argv += ["--gpus", "all"]
    for mount in sorted(mounts, key=lambda m: (not m.read_only, int(m.container.split("/")[2]))):
        argv += ["-v", mount.volume_arg()]
    argv += list(settings.extra_args)
    argv += [settings.image, "request", "--json", request_json, "--jsonl"]
    return argv


def build_docker_run(
    request: dict[str, Any],
    settings: DockerSettings,
    input_paths: Sequence[str],
    output_paths: Sequence[str],
    *,
    container_name: str | None = None,
    user: str | None = None,
    create_output_dirs: bool = True,
) -> DockerInvocation:
    """The ``docker run`` invocation of ``request`` (``{"command", "params"}``).

    ``input_paths``: files (or folders) the engine reads; their parent folders are mounted
    read-only. ``output_paths``: files or folders the engine writes; their parent folders are
    mounted writable (and created when ``create_output_dirs``, so Docker does not create them
    as root). ``container_name`` defaults to ``canopygaps-<uuid4 hex>``; ``user`` to
    ``"<uid>:<gid>"`` of this process on POSIX (pass ``""`` to leave the image's user).

    Raises :class:`DockerPathError` for a request path outside every mount.
    """
    name = container_name or f"canopygaps-{uuid.uuid4().hex}"
    if user is None:
        user = _default_user()
    mounts = _Mounts()
    inputs = [(p, _host_abspath(p)) for p in input_paths if p]
    outputs = [(p, _host_abspath(p)) for p in output_paths if p]
    for _, host in outputs:
        folder = _host_parent(host)
        if create_output_dirs and not _is_windows(folder):
            os.makedirs(folder, exist_ok=True)
        mounts.add(folder, read_only=False)
    for _, host in inputs:
        mounts.add(_host_parent(host), read_only=True)

    translate = _Translator(inputs, outputs, mounts.mounts)
    container_request = dict(request)
    container_request["params"] = _map_strings(dict(request.get("params") or {}), translate)
    request_json = json.dumps(container_request, separators=(",", ":"), ensure_ascii=False)
    return DockerInvocation(
        argv=_docker_argv(settings, name, user, mounts.mounts, request_json),
        container_name=name,
        stop_argv=[settings.docker, "stop", "-t", "5", name],
        kill_argv=[settings.docker, "kill", name],
        mounts=mounts.mounts,
        request=container_request,
    )


def stop_container(invocation: DockerInvocation, timeout: float = 15.0) -> bool:
    """Stop the container (``docker stop -t 5``), then ``docker kill`` if that failed.

    Returns True when one of them succeeded. A container that is already gone counts as a
    failure of both, which is harmless.
    """
    for argv in (invocation.stop_argv, invocation.kill_argv):
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return True
    return False
