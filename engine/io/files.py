"""Atomic file and folder outputs: write to a temporary name, rename on success.

Every engine output goes through :func:`atomic_path` (files) or :func:`atomic_dir` (folders),
so a failure or a cancel never leaves a half-written result at the destination.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from engine.errors import EngineError, InputError
from engine.io.failures import failure_kind, write_failure
from engine.io.leftovers import clean_leftovers, find_leftovers, remove
from engine.io.tempnames import (
    HOST,
    destination_of,
    output_path,
    temp_sibling,
    temp_tag,
    without_temp_names,
)

__all__ = [
    "HOST",
    "OWNER_FILE",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "clean_leftovers",
    "destination_of",
    "ensure_parent",
    "find_leftovers",
    "output_failure",
    "output_path",
    "temp_sibling",
    "temp_tag",
]

#: Marker written into every output folder the engine creates: lists what it wrote, so a later
#: run may replace that folder only when it holds nothing else.
OWNER_FILE = ".canopygaps-output.json"
OWNER_FORMAT = "canopygaps-output"


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
    tmp = temp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"Internal error: nothing was written to {tmp} for {final}.")
        if tmp.is_file():
            # Some writers (safetensors) create private 0600 files: give outputs the usual mode.
            os.chmod(tmp, 0o666 & ~_umask())
            _fsync(tmp)
        os.replace(tmp, final)
    except BaseException as exc:
        _remove(tmp, sidecars)
        if _is_write_failure(exc, tmp):
            raise output_failure(final, exc) from exc
        raise
    for extra in sidecars:
        side = Path(str(tmp) + extra)
        if side.exists():
            os.replace(side, Path(str(final) + extra))


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


def _is_write_failure(exc: BaseException, tmp: Path) -> bool:
    """True for an OS error of writing (full disk, size limit...) or one naming ``tmp``, and
    for a library's own error reporting one (safetensors: 'No space left on device')."""
    if isinstance(exc, EngineError) or not isinstance(exc, Exception):
        return False
    if not isinstance(exc, OSError):
        return failure_kind(None, str(exc)) in ("full", "quota", "too_large", "read_only")
    named = str(exc.filename or "").startswith(str(tmp))
    return named or exc.errno in _WRITE_ERRNOS


def output_failure(path: str | os.PathLike[str], exc: BaseException | str) -> EngineError:
    """The :class:`~engine.errors.OutputError` for a failed write of ``path`` (a temporary path
    is shown as its destination): what happened and what to do."""
    if isinstance(exc, EngineError):
        return exc
    code = exc.errno if isinstance(exc, OSError) else None
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    return write_failure(destination_of(path), without_temp_names(reason), code)


def _fsync(path: Path) -> None:
    """Flush ``path`` to disk, so a full disk is reported now rather than lost later."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_write_failure(exc, tmp):
            failed = getattr(exc, "filename", None)
            raise output_failure(failed if failed else final, exc) from exc
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
        remove(p)
