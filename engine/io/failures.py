"""Write failures in plain words: full disks, file-size limits, read-only folders.

The operating system and GDAL report a failed write with a terse reason (``[Errno 28] No space
left on device``, ``_tiffWriteProc:File too large``, ``sqlite3_exec(...) failed: database or disk
is full``) and, often, the name of a temporary file. :func:`write_failure` turns that into an
:class:`~engine.errors.OutputError` that names the user's destination, says what happened and
what to do. :func:`check_free_space` refuses, before any work, an output whose exact size is
known not to fit (``preprocess``'s uncompressed tile arrays).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from engine.errors import OutputError

# (kind, errno values, lower-case phrases found in GDAL / SQLite / OS messages)
_KINDS: tuple[tuple[str, tuple[int, ...], tuple[str, ...]], ...] = (
    ("full", (errno.ENOSPC,), ("no space left", "disk is full", "disk full")),
    ("quota", (errno.EDQUOT,), ("quota exceeded",)),
    ("too_large", (errno.EFBIG,), ("file too large", "too big")),
    ("read_only", (errno.EROFS,), ("read-only file system",)),
    ("permission", (errno.EACCES, errno.EPERM), ("permission denied",)),
)
_REASON = {
    "full": os.strerror(errno.ENOSPC),
    "quota": os.strerror(errno.EDQUOT),
    "too_large": os.strerror(errno.EFBIG),
    "read_only": os.strerror(errno.EROFS),
    "permission": os.strerror(errno.EACCES),
}
MAX_DETAIL = 300
"""Characters of an unclassified reason kept in the message (an SQL statement can be 10 KB)."""


def failure_kind(code: int | None, text: str) -> str | None:
    """``full``, ``quota``, ``too_large``, ``read_only``, ``permission`` or None (other)."""
    low = text.lower()
    for kind, codes, phrases in _KINDS:
        if code in codes or any(p in low for p in phrases):
            return kind
    return None


def human_size(size: float) -> str:
    """``5.0 KB``, ``1.2 GB``... (decimal units)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - loop always returns


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the disk holding ``folder`` (its nearest existing parent); None if unknown."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def write_failure(final: Path, reason: str, code: int | None = None) -> OutputError:
    """The :class:`OutputError` for a failed write of ``final`` (the user's destination).

    ``reason`` is the OS or GDAL message, ``code`` the errno when known."""
    folder = final.parent
    kind = failure_kind(code, reason)
    if kind in ("full", "quota"):
        what = "is full" if kind == "full" else "is over your disk quota"
        return OutputError(
            f"The disk holding {folder} {what} ({_REASON[kind]}): {final.name} could not be "
            "written, and nothing was left in its place.",
            "Free some space on that disk or choose an output folder on another disk, "
            "then run again.",
        )
    if kind == "too_large":
        return OutputError(
            f"{final} grew beyond the largest file allowed there ({_REASON[kind]}: a file-size "
            "limit such as 'ulimit -f', or the 4 GB limit of a FAT32 disk); nothing was left in "
            "its place.",
            "Write it to another disk (NTFS, ext4...) or raise the limit, then run again.",
        )
    if kind in ("read_only", "permission"):
        return OutputError(
            f"Cannot write {final}: {_REASON[kind]} in {folder}.",
            "Choose an output folder you can write to, then run again.",
        )
    return OutputError(
        f"Writing {final} failed ({_short(reason)}); nothing was left in its place.",
        f"Check the disk holding {folder} (free space, permissions, network connection), "
        "then run again.",
    )


def check_free_space(final: Path, needed: int, what: str) -> None:
    """:class:`OutputError` when the disk holding ``final`` has less than ``needed`` bytes free.

    Only for outputs whose size is known exactly in advance (uncompressed arrays)."""
    free = free_bytes(final.parent)
    if free is not None and free < needed:
        raise OutputError(
            f"The disk holding {final.parent} has {human_size(free)} free, but {what} needs "
            f"{human_size(needed)}; nothing was written.",
            "Free some space on that disk or choose an output folder on another disk, "
            "then run again.",
        )
