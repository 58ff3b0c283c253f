"""Names of temporary outputs, and the user's path they stand for.

Every output is first written under a hidden temporary name next to its destination:
``.gaps.part-<tag>.tif`` for a file, ``.dataset.part-<tag>`` for a folder, and
``.gaps.staged-<tag>.tif`` for a run's outputs kept until the whole run succeeds (written itself
through ``..gaps.staged-<tag>.part-<tag>.tif``). The tag ``<host>-<pid>-<random>`` names the
writing process, so a later run can tell the leftovers of a killed run (process gone: removed,
see :mod:`engine.io.leftovers`) from a run still in progress (kept). Messages never show these
names: :func:`destination_of` gives the path the user asked for.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
import zlib
from pathlib import Path

HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"
"""This machine, as 4 hex digits of a hash of its host name."""
_TAG = r"\.(?:part|staged|old)-(?:(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-)?[0-9a-f]{8}"
TEMP_RE = re.compile(rf"^\.+(?P<stem>.+?){_TAG}(?:[.].*)?$")
"""A temporary name: groups ``stem``, ``host`` and ``pid`` (None for untagged older names)."""
_ANY_TAG = re.compile(_TAG.replace("?P<host>", "?:").replace("?P<pid>", "?:"))
_TEMP_TOKEN = re.compile(rf"[^\s'\"]*{_ANY_TAG.pattern}[^\s'\":]*")


def temp_tag() -> str:
    """A unique tag for a temporary name: ``<host>-<pid>-<random>``."""
    return f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_sibling(path: Path, kind: str = "part") -> Path:
    """A temporary name next to ``path``: ``.<stem>.<kind>-<tag><suffix>``."""
    # Keep the suffix so drivers chosen by extension (GDAL) still recognise the file.
    return path.with_name(f".{path.stem}.{kind}-{temp_tag()}{path.suffix}")


def output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute and normalised (``.`` and ``..`` resolved, links kept)."""
    return Path(os.path.abspath(os.fspath(path)))


def destination_of(path: str | os.PathLike[str]) -> Path:
    """The user's path for a temporary one: each temporary name in it (``.gaps.part-<tag>.tif``,
    ``..gaps.staged-<tag>.part-<tag>.tif``, ``.dataset.part-<tag>``) becomes the name it is
    renamed to (``gaps.tif``, ``dataset``)."""
    parts = []
    for part in Path(path).parts:
        name, n = _ANY_TAG.subn("", part)
        parts.append(name[n:] if n and name.startswith("." * n) else part)
    return Path(*parts)


def without_temp_names(text: str) -> str:
    """``text`` (an OS or GDAL message) with every temporary path replaced by its destination."""
    return _TEMP_TOKEN.sub(lambda m: str(destination_of(m.group())), text)
