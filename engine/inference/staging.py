"""All-or-nothing outputs for a whole run (several files, several DSMs).

Each output is written (itself atomically, by ``engine.io``) under a hidden temporary name next
to its destination; :meth:`Staging.commit` renames them all at the very end, and
:meth:`Staging.abort` deletes them. So an error or a cancel at any point - even while the
polygons of the last DSM are written - leaves no output at all, and never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from engine.io.files import clean_leftovers, ensure_parent, output_path, temp_sibling
from engine.io.leftovers import work_folder


class Staging:
    """Temporary names for final outputs; commit renames them, abort deletes them."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._work: list[Path] = []

    def path(self, final: str | os.PathLike[str]) -> Path:
        """Temporary path to write in place of ``final``."""
        final = output_path(final)
        ensure_parent(final)
        clean_leftovers(final)
        tmp = temp_sibling(final, "staged")
        self._pending.append((tmp, final))
        return tmp

    def work_dir(self, path: Path) -> Path:
        """A scratch folder deleted at commit or abort (part files); marked as this process's,
        so the next run removes it if this one is killed."""
        work_folder(path)
        self._work.append(path)
        return path

    def commit(self) -> list[Path]:
        """Move every staged file to its destination; return the destinations."""
        done = []
        for tmp, final in self._pending:
            os.replace(tmp, final)
            done.append(final)
        self._pending.clear()
        self._cleanup_work()
        return done

    def abort(self) -> None:
        """Delete every staged file and scratch folder."""
        for tmp, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._pending.clear()
        self._cleanup_work()

    def _cleanup_work(self) -> None:
        for path in self._work:
            shutil.rmtree(path, ignore_errors=True)
        self._work.clear()

    @contextlib.contextmanager
    def run(self, commit: bool = True) -> Iterator[Staging]:
        """``with staging.run():`` commits on success (if ``commit``), aborts on any exception."""
        try:
            yield self
        except BaseException:
            self.abort()
            raise
        if commit:
            self.commit()
