"""Output folders and files: never destroy what the engine did not write; clean up killed runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.io import files
from engine.io.files import (
    OWNER_FILE,
    atomic_dir,
    atomic_path,
    check_output_dir,
    clean_leftovers,
    find_leftovers,
)


def _write_result(folder: Path, text: str = "new") -> None:
    with atomic_dir(folder, command="test") as tmp:
        (tmp / "result.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "tile.npy").write_bytes(b"x")


def test_new_folder_gets_owner_marker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(out)
    marker = json.loads((out / OWNER_FILE).read_text())
    assert marker["format"] == "canopygaps-output"
    assert marker["command"] == "test"
    assert set(marker["entries"]) == {"result.txt", "sub", "sub/tile.npy"}


def test_folder_with_foreign_files_is_refused_and_untouched(tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "dsm.tif").write_bytes(b"input")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"did not write \(dsm.tif, notes.txt\)"):
        _write_result(out)
    assert sorted(p.name for p in out.iterdir()) == ["dsm.tif", "notes.txt"]
    assert (out / "dsm.tif").read_bytes() == b"input"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_engine_folder_is_replaced_when_it_holds_only_engine_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(out, "first")
    _write_result(out, "second")
    assert (out / "result.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_engine_folder_with_a_user_file_added_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(out, "first")
    (out / "sub" / "my-notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"sub/my-notes\.txt"):
        _write_result(out, "second")
    assert (out / "result.txt").read_text() == "first"
    assert (out / "sub" / "my-notes.txt").read_text() == "keep me"


def test_forged_or_foreign_marker_does_not_grant_ownership(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / OWNER_FILE).write_text('{"format": "something-else", "entries": ["a.txt"]}')
    (out / "a.txt").write_text("a")
    with pytest.raises(InputError, match="did not write"):
        check_output_dir(out)


def test_overwrite_false_refuses_an_engine_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(out)
    with pytest.raises(InputError, match="earlier canopygaps result"):
        check_output_dir(out, overwrite=False)


def test_empty_folder_and_dot_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    _write_result(out)
    assert (out / "result.txt").exists()
    monkeypatch.chdir(out)
    _write_result(Path("."), "again")
    assert (out / "result.txt").read_text() == "again"


def test_existing_file_as_folder_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.write_text("a file")
    with pytest.raises(InputError, match="is an existing file"):
        _write_result(out)
    assert out.read_text() == "a file"


def test_foreign_file_arriving_during_the_run_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"late\.txt"), atomic_dir(out) as tmp:
        (tmp / "result.txt").write_text("x")
        out.mkdir()
        (out / "late.txt").write_text("user")
    assert (out / "late.txt").read_text() == "user"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_inside_atomic_dir_leaves_the_old_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(out, "first")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "result.txt").write_text("half")
        raise RuntimeError("boom")
    assert (out / "result.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_path_refuses_a_folder_destination(tmp_path: Path) -> None:
    (tmp_path / "gaps.tif").mkdir()
    with pytest.raises(InputError, match="is a folder"), atomic_path(tmp_path / "gaps.tif") as t:
        t.write_text("x")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_runs_are_removed_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = _dead_pid()
    host = files.HOST
    stale_file = tmp_path / f".gaps.part-{host}-{dead}-0123abcd.tif"
    stale_file.write_bytes(b"x" * 5000)
    staged = tmp_path / f"..gaps.staged-{host}-{dead}-0123abcd.part-{host}-{dead}-89abcdef.tif"
    staged.write_bytes(b"y")
    stale_dir = tmp_path / f".report.part-{host}-{dead}-0badf00d"
    stale_dir.mkdir()
    (stale_dir / "metrics.json").write_text("{}")
    live = tmp_path / f".gaps.part-{host}-{os.getppid()}-fedcba98.tif"
    live.write_bytes(b"z")
    old_format = tmp_path / ".gaps.part-1234abcd.tif"
    old_format.write_bytes(b"w" * 10)
    unrelated = tmp_path / ".gapsfill.part-notes.txt"
    unrelated.write_text("user")

    with caplog.at_level(logging.WARNING, logger="engine"):
        with atomic_path(tmp_path / "gaps.tif") as tmp:
            tmp.write_bytes(b"new")
        _write_result(tmp_path / "report")

    assert not stale_file.exists() and not staged.exists() and not stale_dir.exists()
    assert live.exists(), "a temporary of a live process must never be removed"
    assert old_format.exists() and unrelated.exists()
    text = caplog.text
    assert "Removed" in text and "5.0 KB" in text
    assert ".gaps.part-1234abcd.tif (10 bytes)" in text
    assert "gapsfill" not in text


def test_find_leftovers_ignores_own_process(tmp_path: Path) -> None:
    own = tmp_path / f".gaps.part-{files.HOST}-{os.getpid()}-0123abcd.tif"
    own.write_bytes(b"x")
    assert find_leftovers(tmp_path / "gaps.tif") == []
    assert clean_leftovers(tmp_path / "gaps.tif") == []
    assert own.exists()
