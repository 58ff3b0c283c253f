"""Leftovers of killed runs: temporary outputs whose writing process is gone.

A run killed with SIGKILL (or a power cut) cannot clean up after itself: its temporary files and
folders (:mod:`engine.io.tempnames`) and its scratch folders stay. The next run that writes to
the same destination calls :func:`clean_leftovers`: temporaries tagged by this host and a
process that no longer exists are removed and logged with their size; those it cannot prove
abandoned (older untagged names, other hosts) are named in a warning, never deleted. Scratch
folders (:func:`work_folder`, shared by the ranks of a run) carry one owner mark per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from engine.io.failures import human_size
from engine.io.tempnames import HOST, TEMP_RE, output_path, temp_tag

_log = logging.getLogger("engine")
WORK_SUFFIX = ".parts"
_OWNER_MARK = ".owner-"


def work_folder(path: Path) -> Path:
    """Create scratch folder ``path`` (``.<stem>.parts``, shared by the ranks of one run) and
    mark it as used by this process, so a later run can tell when its users are all gone."""
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{_OWNER_MARK}{temp_tag()}").touch()
    return path


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(host: str | None, pid: str | None) -> bool | None:
    """True: writer gone; False: unknown (untagged, other host); None: writer alive (or us)."""
    if pid is None or host != HOST:
        return False
    if int(pid) == os.getpid() or _process_alive(int(pid)):
        return None
    return True


def _work_folder_state(path: Path) -> bool | None:
    """:func:`_abandoned` for a scratch folder: True only when every owner is gone."""
    owners = [n.name[len(_OWNER_MARK) :].split("-") for n in path.glob(f"{_OWNER_MARK}*")]
    states = [_abandoned(o[0], o[1]) if len(o) == 3 else False for o in owners]
    if None in states:
        return None
    return bool(states) and all(states)


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(
            (Path(root) / f).lstat().st_size for root, _, files in os.walk(path) for f in files
        )
    return path.lstat().st_size


def _is_temp_of(name: str, final: Path) -> bool:
    """True if ``name`` is one of the temporary names this engine uses for ``final``."""
    prefixes = [
        f"{dots}{stem}.{kind}-"
        for stem in {final.stem, final.name}
        for dots, kind in ((".", "part"), (".", "staged"), (".", "old"), ("..", "staged"))
    ]
    return name.startswith(tuple(prefixes))


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
    work = f".{final.stem}{WORK_SUFFIX}"
    with os.scandir(final.parent) as entries:
        for entry in entries:
            m = TEMP_RE.match(entry.name)
            if m is not None and _is_temp_of(entry.name, final):
                state = _abandoned(m["host"], m["pid"])
            elif entry.name == work and entry.is_dir(follow_symlinks=False):
                state = _work_folder_state(Path(entry.path))
            else:
                continue
            if state is not None:
                found.append((Path(entry.path), state))
    return sorted(found)


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
            remove(path)
            removed.append(path)
            _log.warning(
                "Removed %s (%s), left by an interrupted earlier run.", path, human_size(size)
            )
        else:
            _log.warning(
                "%s (%s) looks like the leftover of an interrupted run (by an older version or "
                "another machine); delete it if no other run is writing there.",
                path,
                human_size(size),
            )
    return removed


def remove(path: Path) -> None:
    """Delete a file or a folder tree; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
