"""Atomic file and folder outputs: write to a temporary name, rename on success.

Every engine output goes through :func:`atomic_path` (files) or :func:`atomic_dir` (folders),
so a failure or a cancel never leaves a half-written result at the destination.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InputError

#: Marker written into every output folder the engine creates: lists what it wrote, so a later
#: run may replace that folder only when it holds nothing else.
OWNER_FILE = ".canopygaps-output.json"
OWNER_FORMAT = "canopygaps-output"

_log = logging.getLogger("engine")

# Temporary names carry the writing process (host hash and pid), so a later run can tell the
# leftovers of a killed run (process gone: removed) from a run still in progress (kept).
_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"
_TEMP_RE = re.compile(
    r"^\.+(?P<stem>.+?)\.(?:part|staged|old)-"
    r"(?:(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-)?[0-9a-f]{8}(?:[.].*)?$"
)


def temp_tag() -> str:
    """A unique tag for a temporary name: ``<host>-<pid>-<random>``."""
    return f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _temp_sibling(path: Path, kind: str = "part") -> Path:
    # Keep the suffix so drivers chosen by extension (GDAL) still recognise the file.
    return path.with_name(f".{path.stem}.{kind}-{temp_tag()}{path.suffix}")


def output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute and normalised (``.`` and ``..`` resolved, links kept)."""
    return Path(os.path.abspath(os.fspath(path)))


def ensure_parent(path: Path) -> None:
    """Create the parent folder of ``path`` or raise :class:`InputError` saying why not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"Cannot create the output folder {path.parent}: {exc.strerror}.",
            "Choose an output location you can write to.",
        ) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(
            f"Cannot write into the folder {path.parent} (no permission, or a read-only disk).",
            "Choose an output location you can write to.",
        )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(
            (Path(root) / f).lstat().st_size for root, _, files in os.walk(path) for f in files
        )
    return path.lstat().st_size


def find_leftovers(final: str | os.PathLike[str]) -> list[tuple[Path, bool]]:
    """Temporaries of earlier runs next to ``final``: ``(path, removable)`` pairs.

    A temporary is removable when it was made on this host by a process that no longer exists
    (a killed run). Temporaries of live runs are not listed; those without a writer tag (older
    engine versions, other hosts) are listed as not removable.
    """
    final = output_path(final)
    if not final.parent.is_dir():
        return []
    found: list[tuple[Path, bool]] = []
    with os.scandir(final.parent) as entries:
        for entry in entries:
            m = _TEMP_RE.match(entry.name)
            if m is None or not _is_temp_of(entry.name, final):
                continue
            if m["pid"] is None or m["host"] != _HOST:
                found.append((Path(entry.path), False))
            elif int(m["pid"]) != os.getpid() and not _process_alive(int(m["pid"])):
                found.append((Path(entry.path), True))
    return sorted(found)


def _is_temp_of(name: str, final: Path) -> bool:
    """True if ``name`` is one of the temporary names this engine uses for ``final``."""
    prefixes = [
        f"{dots}{stem}.{kind}-"
        for stem in {final.stem, final.name}
        for dots, kind in ((".", "part"), (".", "staged"), (".", "old"), ("..", "staged"))
    ]
    return name.startswith(tuple(prefixes))


def clean_leftovers(final: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that killed runs left next to ``final``; log what was found.

    Returns the removed paths. Temporaries that cannot be proven abandoned are named in a
    warning with their size, never deleted.
    """
    removed = []
    for path, removable in find_leftovers(final):
        try:
            size = _size(path)
        except OSError:
            continue
        if removable:
            _remove(path, ())
            removed.append(path)
            _log.warning("Removed %s (%s), left by an interrupted earlier run.", path, _human(size))
        else:
            _log.warning(
                "%s (%s) looks like the leftover of an interrupted run (by an older version or "
                "another machine); delete it if no other run is writing there.",
                path,
                _human(size),
            )
    return removed


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], sidecars: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    ``sidecars`` are extra suffixes (e.g. ``".aux.xml"``) that move along with the file when they
    exist. On any exception (including :class:`~engine.errors.Cancelled`) the temporary file and
    its sidecars are deleted and the destination is left untouched. Leftovers of killed runs
    next to ``path`` are removed first.
    """
    final = output_path(path)
    ensure_parent(final)
    if final.is_dir():
        raise InputError(
            f"The output {final} is a folder, not a file.", "Give a file name for this output."
        )
    clean_leftovers(final)
    tmp = _temp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"Internal error: nothing was written to {tmp} for {final}.")
        if tmp.is_file():
            # Some writers (safetensors) create private 0600 files: give outputs the usual mode.
            os.chmod(tmp, 0o666 & ~_umask())
            _fsync(tmp)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp, sidecars)
        raise
    for extra in sidecars:
        side = Path(str(tmp) + extra)
        if side.exists():
            os.replace(side, Path(str(final) + extra))


def _fsync(path: Path) -> None:
    """Flush ``path`` to disk, so a full disk is reported now rather than lost later."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"Could not write {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _folder_entries(folder: Path) -> set[str]:
    """Every file and sub-folder below ``folder``, as POSIX paths relative to it."""
    found: set[str] = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in (*dirs, *files):
            found.add((rel / name).as_posix())
    return found


def _owned_entries(folder: Path) -> set[str] | None:
    """What the engine recorded writing into ``folder`` (None: not an engine output folder)."""
    marker = folder / OWNER_FILE
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != OWNER_FORMAT:
        return None
    entries = data.get("entries")
    if not isinstance(entries, list):
        return None
    return {str(e) for e in entries} | {OWNER_FILE}


def check_output_dir(path: str | os.PathLike[str], overwrite: bool = True) -> None:
    """Raise :class:`InputError` unless ``path`` may receive a new output folder.

    Allowed: a path that does not exist, an empty folder, or (with ``overwrite``) a folder that
    an earlier run of the engine wrote and that holds nothing else. Anything the engine did not
    write itself (input rasters, documents) is never emptied or replaced.
    """
    final = output_path(path)
    if not final.exists():
        return
    if not final.is_dir():
        raise InputError(
            f"The output folder {final} is an existing file.",
            "Give the name of a new folder (it is created) or of an empty one.",
        )
    present = _folder_entries(final)
    if not present:
        return
    owned = _owned_entries(final)
    foreign = sorted(present - owned) if owned is not None else sorted(present)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise InputError(
            f"The output folder {final} already holds files canopygaps did not write ({shown}); "
            "they are never replaced or deleted.",
            "Choose a new or empty output folder, for example a subfolder "
            f"{final / 'canopygaps-output'}.",
        )
    if not overwrite:
        raise InputError(
            f"The output folder {final} holds an earlier canopygaps result.",
            "Choose another folder, or allow overwriting earlier results.",
        )


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike[str], overwrite: bool = True, command: str = ""
) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; move it to ``path`` on success.

    ``path`` must be new, empty, or an earlier engine output holding nothing else (and
    ``overwrite``): see :func:`check_output_dir`, checked before and again after the work. The new
    folder records what it holds in :data:`OWNER_FILE`.
    """
    final = output_path(path)
    check_output_dir(final, overwrite)
    ensure_parent(final)
    clean_leftovers(final)
    tmp = final.with_name(f".{final.name}.part-{temp_tag()}")
    tmp.mkdir()
    try:
        yield tmp
        marker = {
            "format": OWNER_FORMAT,
            "command": command,
            "entries": sorted(_folder_entries(tmp)),
        }
        (tmp / OWNER_FILE).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync(Path(root) / name)
        check_output_dir(final, overwrite)
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, final: Path) -> None:
    """Move folder ``tmp`` to ``final`` (which is absent, empty, or an engine output)."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = final.with_name(f".{final.name}.old-{temp_tag()}")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _umask() -> int:
    """The process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove(path: Path, sidecars: tuple[str, ...]) -> None:
    for p in (path, *(Path(str(path) + s) for s in sidecars)):
        with contextlib.suppress(FileNotFoundError):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
