"""Atomic file and folder outputs: write to a temporary name, rename on success.

Every engine output goes through :func:`atomic_path` (files) or :func:`atomic_dir` (folders),
so a failure or a cancel never leaves a half-written result at the destination.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InputError


def _temp_sibling(path: Path) -> Path:
    # Keep the suffix so drivers chosen by extension (GDAL) still recognise the file.
    return path.with_name(f".{path.stem}.part-{uuid.uuid4().hex[:8]}{path.suffix}")


def ensure_parent(path: Path) -> None:
    """Create the parent folder of ``path`` or raise :class:`InputError` saying why not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"Cannot create the output folder {path.parent}: {exc.strerror}.",
            "Choose an output location you can write to.",
        ) from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], sidecars: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    ``sidecars`` are extra suffixes (e.g. ``".aux.xml"``) that move along with the file when they
    exist. On any exception (including :class:`~engine.errors.Cancelled`) the temporary file and
    its sidecars are deleted and the destination is left untouched.
    """
    final = Path(path)
    ensure_parent(final)
    tmp = _temp_sibling(final)
    try:
        yield tmp
    except BaseException:
        _remove(tmp, sidecars)
        raise
    if not tmp.exists():
        raise RuntimeError(f"Internal error: nothing was written to {tmp} for {final}.")
    if tmp.is_file():
        # Some writers (safetensors) create private 0600 files: give outputs the usual mode.
        os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, final)
    for extra in sidecars:
        side = Path(str(tmp) + extra)
        if side.exists():
            os.replace(side, Path(str(final) + extra))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; replace ``path`` with it on success."""
    final = Path(path)
    ensure_parent(final)
    if final.exists() and not overwrite:
        raise InputError(
            f"Output folder {final} already exists.", "Choose another folder or allow overwrite."
        )
    tmp = final.with_name(f".{final.name}.part-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


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
