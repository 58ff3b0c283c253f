"""Reliability catalogue (issue 13): what a user does, what the engine must answer.

Each row of :data:`CASES` is one situation met by trying the engine as a new user would: the
command line (or request), the exit code, a fragment of the message the user must see, and
exactly what may exist in the output folder afterwards (hidden files included, so a leftover
temporary fails the case). Rows run through the real CLI (``engine.cli.main``, in this
process); request rows go through ``canopygaps request --jsonl``, the plugin's protocol. Full
disks are simulated with RLIMIT_FSIZE (writes beyond it fail with EFBIG) and, where the tests
run as root on a machine that allows it, a real 64 KB tmpfs (ENOSPC); :data:`SIGNALS` kills or
stops real engine processes. The README's "Guarantees" section lists what this proves.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.api import COMMANDS
from tests.reliability_helpers import (
    check_left,
    cli,
    engine_process,
    expand,
    make_workspace,
    mounted_tmpfs,
    noisy_dsm,
    read_only_folder,
    request_argv,
    stop_when,
    write_dsm,
)

INFER = "infer --dsm {ws}/scene/dsm.tif --model {ws}/unet.safetensors --runtime torch"
CLASSICAL = "classical --dsm {ws}/scene/dsm.tif --output {out}/c.tif"
SITE = "{{name: s, dsm: {ws}/scene/dsm.tif, reference_dtm: {ws}/scene/dtm.tif}}"
EVALUATE = f"evaluate --classical true --figures false --set 'sites=[{SITE}]'"
PREPROCESS = (
    "preprocess --tile_size 32 --output {out}/ds "
    "--set 'sites=[{{name: s, dsm: {ws}/scene/dsm.tif, dtm: {ws}/%s}}]'"
)
TRAIN = (
    "train --dataset {ws}/dataset --output {out}/m.safetensors --epochs 1 --batch_size 4 "
    "--progress_bar false --tensorboard false --test false "
    "--set 'model.args={{base_channels: 4, depth: 2}}'"
)
REPORT = (".canopygaps-output.json", "metrics*", "report.*", "predictions")
GONE = "nothing was left in its place"
TOO_LARGE = "grew beyond the largest file allowed"


@dataclass(frozen=True)
class Case:
    """One situation: command, expected exit code, message fragments, what may be left."""

    id: str
    command: str = ""
    code: int = 1
    message: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    request: dict[str, Any] | None = None
    fsize: int | None = None
    before: str | None = None
    in_out: bool = False
    read_only: bool = False
    disk_kb: int | None = None
    user_files: tuple[str, ...] = ()


FOREIGN = "already holds files canopygaps did not write"
CASES = [
    # -- data loss: a folder holding the user's files is never emptied or replaced --
    Case(
        "synth-into-folder-with-user-file",
        "synth --output {out} --size 64",
        message=(FOREIGN, "thesis.docx"),
        user_files=("thesis.docx",),
        left=("thesis.docx",),
    ),
    Case(
        "evaluate-into-site-folder",
        EVALUATE + " --output {out}",
        message=(FOREIGN, "dsm.tif, dtm.tif, notes.txt"),
        user_files=("dsm.tif", "dtm.tif", "notes.txt"),
        left=("dsm.tif", "dtm.tif", "notes.txt"),
    ),
    Case(
        "preprocess-into-folder-with-user-file",
        "preprocess --tile_size 32 --output {out} "
        "--set 'sites=[{{name: s, dsm: {ws}/scene/dsm.tif, dtm: {ws}/scene/dtm.tif}}]'",
        message=(FOREIGN, "notes.txt"),
        user_files=("notes.txt",),
        left=("notes.txt",),
    ),
    Case(
        "synth-rerun-replaces-its-own-output",
        "synth --output {out}/p --size 64",
        before="synth --output {out}/p --size 64 --seed 5",
        code=0,
        left=("p",),
    ),
    # -- every write checked: a full disk or size limit is an error, with nothing left --
    Case(
        "disk-infer-probabilities",
        INFER + " --output {out}/gaps.tif --probabilities {out}/p.tif",
        message=("p.tif " + TOO_LARGE, GONE),
        fsize=32_000,
    ),
    Case(
        "disk-classical-heights",
        CLASSICAL + " --heights {out}/h.tif",
        message=("h.tif " + TOO_LARGE, GONE),
        fsize=32_000,
    ),
    Case(
        "disk-polygons",
        CLASSICAL + " --polygons {out}/c.gpkg",
        message=("c.gpkg", GONE),
        fsize=64_000,
    ),
    Case(
        "disk-preprocess",
        PREPROCESS % "scene/dtm.tif",
        message=("inputs.npy " + TOO_LARGE, GONE),
        fsize=32_000,
    ),
    Case(
        "disk-evaluate",
        EVALUATE + " --output {out}/report",
        message=("metrics.json " + TOO_LARGE, GONE),
        fsize=20_000,
    ),
    Case(
        "request-disk-infer",
        request={
            "command": "infer",
            "params": {
                "dsm": "{ws}/scene/dsm.tif",
                "model": "{ws}/unet.safetensors",
                "runtime": "torch",
                "output": "{out}/gaps.tif",
                "probabilities": "{out}/p.tif",
            },
        },
        message=('"type": "OutputError"', TOO_LARGE),
        fsize=32_000,
    ),
    Case(
        "full-disk-infer-probabilities",
        INFER + " --output {out}/gaps.tif --probabilities {out}/p.tif",
        message=("The disk holding {out} is full (No space left on device): p.tif", GONE),
        disk_kb=64,
    ),
    Case(
        "full-disk-preprocess-checked-first",
        PREPROCESS % "scene/dtm.tif",
        message=("KB free, but the dataset (16 tiles) needs", "nothing was written"),
        disk_kb=64,
    ),
    Case(
        "full-disk-train",
        TRAIN,
        message=("is full (No space left on device)", ".safetensors could not be written"),
        left=("m-run",),  # the run folder (log, config) stays for a resume; no model file
        disk_kb=64,
    ),
    # -- values that gave wrong results with exit 0 --
    Case(
        "nan-weights",
        INFER.replace("unet.", "nan.") + " --output {out}/gaps.tif",
        message=("non-finite weights",),
    ),
    Case(
        "request-nan-weights",
        request={
            "command": "infer",
            "params": {
                "dsm": "{ws}/scene/dsm.tif",
                "model": "{ws}/nan.safetensors",
                "output": "{out}/g.tif",
            },
        },
        message=("ModelFileError", "non-finite weights"),
    ),
    Case(
        "nan-threshold",
        INFER + " --output {out}/g.tif --thresholds .nan,5",
        message=("finite number",),
    ),
    Case("inf-threshold", CLASSICAL + " --thresholds 2,.inf", message=("finite number",)),
    Case(
        "request-nan-threshold",
        request={
            "command": "classical",
            "params": {
                "dsm": "{ws}/scene/dsm.tif",
                "output": "{out}/c.tif",
                "thresholds": [float("nan")],
            },
        },
        message=("finite number",),
    ),
    Case(
        "tiny-dsm-infer",
        INFER.replace("scene/dsm.tif", "tiny.tif") + " --output {out}/g.tif",
        message=("3 x 3 pixels", "at least 16 x 16"),
    ),
    Case(
        "tiny-dsm-classical",
        CLASSICAL.replace("scene/dsm.tif", "tiny.tif"),
        message=("at least 16 x 16",),
    ),
    Case(
        "classical-duplicate-thresholds", CLASSICAL + " --thresholds 5,2,5", message=("given once",)
    ),
    Case(
        "infer-duplicate-thresholds",
        INFER + " --output {out}/g.tif --thresholds 5,5",
        message=("given once",),
    ),
    Case(
        "comma-in-dsm-path",
        "classical --dsm '{ws}/a,b/dsm.tif' --output {out}/c.tif",
        code=0,
        message=("a,b/dsm.tif",),
        left=("c.tif",),
    ),
    Case(
        "site-names-same-folder",
        "evaluate --classical true --output {out}/r --set 'sites=["
        "{{name: a b, dsm: {ws}/scene/dsm.tif, reference_dtm: {ws}/scene/dtm.tif}}, "
        "{{name: a_b, dsm: {ws}/scene/dsm.tif, reference_dtm: {ws}/scene/dtm.tif}}]'",
        message=("'a b' and 'a_b' both become the folder name 'a_b'",),
    ),
    Case(
        "resume-with-new-lr",
        TRAIN + " --set optimizer.lr=0.5",
        before=TRAIN,
        message=("optimizer.lr: 0.001 -> 0.5", "resume: false"),
        left=("m.safetensors", "m.json", "m-run"),
    ),
    # -- tracebacks that became messages --
    Case("infer-help", "infer --help", code=0, message=("masks differ by ~0.02 %",)),
    *[
        Case(f"{c}-help", f"{c} --help", code=0, message=(f"usage: canopygaps {c}",))
        for c in COMMANDS
    ],
    Case("config-is-a-folder", "classical --config {ws}/config_folder", message=("is a folder",)),
    Case(
        "read-only-output-folder",
        CLASSICAL,
        message=("Cannot write into the folder {out}",),
        read_only=True,
    ),
    Case(
        "evaluate-output-dot-with-files",
        EVALUATE + " --output .",
        before="synth --output {out}/x --size 64",
        in_out=True,
        message=("already holds files canopygaps did not write (x,",),
        left=("x",),
    ),
    Case("evaluate-output-dot-empty", EVALUATE + " --output .", code=0, in_out=True, left=REPORT),
    Case(
        "request-params-not-an-object",
        request={"command": "classical", "params": ["dsm.tif"]},
        message=("'params' must be a JSON object",),
    ),
    Case("request-help", "request --help", code=0, message=("Run one engine request",)),
    Case("request-without-request", "request", code=2, message=("--file REQ.json or --json",)),
    Case(
        "model-path-is-a-folder",
        INFER.replace("unet.safetensors", "model_folder") + " --output {out}/g.tif",
        message=("is a folder, not a model file",),
    ),
    Case(
        "request-model-path-is-a-folder",
        request={
            "command": "infer",
            "params": {
                "dsm": "{ws}/scene/dsm.tif",
                "model": "{ws}/model_folder",
                "output": "{out}/g.tif",
            },
        },
        message=("is a folder, not a model file",),
    ),
    Case(
        "dtm-on-another-grid-is-logged",
        PREPROCESS % "dtm_2m.tif",
        code=0,
        message=("Resampled the DTM dtm_2m.tif onto the grid of dsm.tif", "px of 2 m", "px of 1 m"),
        left=("ds",),
    ),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("reliability"))


def _argv(case: Case, ws: Path, out: Path) -> list[str]:
    if case.request is not None:
        return request_argv(case.request, ws, out)
    return expand(case.command, ws, out)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue(case: Case, workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    if case.read_only:
        with read_only_folder(out):
            outcome = cli(_argv(case, workspace, out))
    elif case.disk_kb:
        with mounted_tmpfs(out, f"size={case.disk_kb}k"):
            outcome = cli(_argv(case, workspace, out))
            check_left(out, case.left)
    else:
        out.mkdir()
        for name in case.user_files:
            (out / name).write_text(f"the user's {name}")
        if case.before:
            first = cli(expand(case.before, workspace, out))
            assert first.code == 0, first.text
        outcome = cli(
            _argv(case, workspace, out), cwd=out if case.in_out else None, fsize=case.fsize
        )
        check_left(out, case.left)
    assert outcome.code == case.code, outcome.text
    for name in case.user_files:
        assert (out / name).read_text() == f"the user's {name}"
    for fragment in case.message:
        assert fragment.format(out=out) in outcome.text, outcome.text
    assert "Traceback" not in outcome.text


# -- killed and cancelled runs ---------------------------------------------------------------
@dataclass(frozen=True)
class Signal:
    """A real engine process stopped by a signal at a given moment."""

    id: str
    command: str
    sig: int
    when: str  # "temp": a temporary output exists; else a progress stage name
    code: int
    removed: tuple[str, ...] = ()
    rerun: str = ""  # the next run writing to the same place (a smaller DSM: quicker)


SIGNALS = [
    Signal(
        "sigkill-infer",
        "infer --dsm {ws}/big.tif --model {ws}/unet.safetensors --runtime torch "
        "--output {out}/gaps.tif --probabilities {out}/p.tif --min_gap_area_m2 4",
        signal.SIGKILL,
        "temp",
        -signal.SIGKILL,
        removed=("p.staged-", ".gaps.parts"),
        rerun="infer --dsm {ws}/scene/dsm.tif --model {ws}/unet.safetensors --runtime torch "
        "--output {out}/gaps.tif --probabilities {out}/p.tif --min_gap_area_m2 4",
    ),
    Signal(
        "sigkill-preprocess",
        "preprocess --tile_size 64 --output {out}/ds "
        "--set 'sites=[{{name: s, dsm: {ws}/big.tif, chm: {ws}/big.tif}}]'",
        signal.SIGKILL,
        "temp",
        -signal.SIGKILL,
        removed=(".ds.part-",),
        rerun="preprocess --tile_size 64 --output {out}/ds "
        "--set 'sites=[{{name: s, dsm: {ws}/scene/dsm.tif, chm: {ws}/scene/chm.tif}}]'",
    ),
    Signal(
        "sigterm-polygons",
        "classical --dsm {ws}/big.tif --output {out}/c.tif --polygons {out}/c.gpkg",
        signal.SIGTERM,
        "polygons",
        130,
    ),
]


@pytest.fixture(scope="module")
def big_dsm(workspace: Path) -> Path:
    """A 768 x 768 DSM with many gaps: a few seconds of work, many polygons."""
    return write_dsm(workspace / "big.tif", noisy_dsm(768))


@pytest.mark.parametrize("case", SIGNALS, ids=[s.id for s in SIGNALS])
def test_killed_or_cancelled_run(
    case: Signal, workspace: Path, big_dsm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = [*expand(case.command, workspace, out), "--jsonl"]
    proc = engine_process(argv, tmp_path)
    stdout, seconds = stop_when(proc, out, case.when, case.sig)
    assert proc.returncode == case.code, stdout
    if case.code == 130:
        assert '"type": "Cancelled"' in stdout
        # Polygonising this raster takes over a minute on the project's 2 cores; Cancel stops
        # GDAL within a row (~1 s), see tests/io/test_vector.py for the exact check.
        assert seconds < 30
        check_left(out, ())
        return
    left = sorted(p.name for p in out.iterdir())
    assert left, "a killed run leaves its temporaries (this test would prove nothing)"
    again = cli(expand(case.rerun, workspace, out))  # another process: the killed one is gone
    assert again.code == 0, again.text
    for name in left:
        assert f"Removed {out / name} (" in again.text, again.text
    assert "looks like the leftover" not in again.text
    assert all(any(r in name for name in left) for r in case.removed), left
    check_left(out, tuple(n for n in os.listdir(out) if not n.startswith(".")) or ("*",))
    assert not [n for n in os.listdir(out) if n.startswith(".")]
