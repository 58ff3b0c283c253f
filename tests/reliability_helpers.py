"""Helpers of ``test_reliability.py``: a seeded workspace, in-process CLI runs, limits.

The CLI runs in the test process (``engine.cli.main``), so a case costs its own work only, not a
new interpreter importing torch; exit code, stdout and stderr are captured as a user sees them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch
from affine import Affine

from engine.api import run
from engine.cli import main
from engine.io.geotiff import write_raster
from engine.io.grid import make_info
from engine.models.modelfile import ModelDescription, save_model
from engine.models.registry import build_model

NORM = {"window_m": 16.0, "percentile": 2.0, "scale": 10.0, "clip_m": 80.0}
CRS = "EPSG:32618"
ROOT = Path(__file__).resolve().parents[1]


def save_tiny_model(path: Path, poison: bool = False) -> Path:
    """A seeded 4-channel depth-2 U-Net model file; ``poison`` puts a NaN in one weight."""
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, thresholds=[2.0, 5.0, 10.0]).eval()
    if poison:
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
    desc = ModelDescription.from_model(model, tile_size=64, pixel_size=1.0, normalisation=NORM)
    save_model(path, model, desc)
    return path


def write_dsm(path: Path, data: np.ndarray, pixel: float = 1.0) -> Path:
    """A float32 GeoTIFF (projected CRS, north up) of ``data``."""
    transform = Affine(pixel, 0, 500000.0, 0, -pixel, 4700000.0)
    like = make_info(data.shape[1], data.shape[0], transform, CRS, nodata=-9999.0)
    write_raster(path, data.astype(np.float32), like, nodata=-9999.0)
    return path


def noisy_dsm(size: int, seed: int = 0) -> np.ndarray:
    """Canopy 15-30 m with many small low patches: many gaps, slow to polygonise."""
    rng = np.random.default_rng(seed)
    dsm = 15 + 15 * rng.random((size, size))
    dsm[rng.random((size, size)) < 0.3] = 1.0
    return dsm.astype(np.float32)


def make_workspace(ws: Path) -> Path:
    """Inputs of every case: a synthetic scene, a tiny and a too-small DSM, a DTM on a 2 m
    grid, a DSM in a folder with a comma, model files, a dataset."""
    run("synth", {"output": str(ws / "scene"), "size": 128, "seed": 3})
    from engine.io.raster import read_array, read_info

    dsm, _ = read_array(ws / "scene" / "dsm.tif")
    dtm, _ = read_array(ws / "scene" / "dtm.tif")
    write_dsm(ws / "tiny.tif", dsm[:3, :3])
    write_dsm(ws / "dtm_2m.tif", dtm[::2, ::2], pixel=2.0)
    (ws / "a,b").mkdir()
    (ws / "a,b" / "dsm.tif").write_bytes((ws / "scene" / "dsm.tif").read_bytes())
    save_tiny_model(ws / "unet.safetensors")
    save_tiny_model(ws / "nan.safetensors", poison=True)
    (ws / "model_folder").mkdir()
    (ws / "config_folder").mkdir()
    run(
        "preprocess",
        {
            "output": str(ws / "dataset"),
            "sites": [
                {"name": "s", "dsm": str(ws / "scene/dsm.tif"), "dtm": str(ws / "dtm_2m.tif")}
            ],
            "tile_size": 32,
            "thresholds": [2, 5, 10],
        },
    )
    assert read_info(ws / "scene" / "dsm.tif").width == 128
    return ws


@contextlib.contextmanager
def file_size_limit(limit: int | None) -> Iterator[None]:
    """RLIMIT_FSIZE (bytes) for this process while the block runs: a write beyond it fails
    with EFBIG (SIGXFSZ ignored), as on a disk that is full or limits file sizes."""
    if limit is None:
        yield
        return
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_sig)


@dataclass
class Outcome:
    """What a user sees: exit code and everything printed."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(argv: list[str], cwd: Path | None = None, fsize: int | None = None) -> Outcome:
    """Run ``canopygaps ARGV`` in this process; signal handlers and cwd are restored."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            file_size_limit(fsize),
        ):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = int(exc.code or 0)
    finally:
        os.chdir(here)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return Outcome(code, out.getvalue(), err.getvalue())


def expand(template: str, ws: Path, out: Path) -> list[str]:
    """A case's command line with ``{ws}`` and ``{out}`` filled in, split like a shell."""
    return shlex.split(template.format(ws=shlex.quote(str(ws)), out=shlex.quote(str(out))))


def check_left(folder: Path, patterns: tuple[str, ...]) -> None:
    """Every entry of ``folder`` (hidden ones too) matches a pattern; every pattern matches."""
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    stray = [n for n in names if not any(fnmatch(n, p) for p in patterns)]
    missing = [p for p in patterns if not any(fnmatch(n, p) for n in names)]
    assert not stray and not missing, f"in {folder}: unexpected {stray}, missing {missing}"


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (root only; the test is skipped where mounting fails)."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True, check=False).returncode:
        pytest.skip("needs root and a machine that allows mounting a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """A folder nobody may write into: mode 0555 for a normal user; for root (who ignores
    modes) a read-only tmpfs, where this machine allows mounting."""
    if os.geteuid() == 0:
        with mounted_tmpfs(path, "ro,size=64k"):
            yield path
        return
    path.mkdir(parents=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


def engine_process(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    """``python -m engine ARGV`` as a child process (its stdout a pipe of JSON lines)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _fill(value: Any, ws: Path, out: Path) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ws, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ws, out) for v in value]
    return value.format(ws=ws, out=out) if isinstance(value, str) else value


def request_argv(request: dict[str, Any], ws: Path, out: Path) -> list[str]:
    """``request --jsonl --json REQUEST`` with ``{ws}`` and ``{out}`` filled in its strings."""
    return ["request", "--jsonl", "--json", json.dumps(_fill(request, ws, out))]


def stop_when(proc: subprocess.Popen[str], out: Path, when: str, sig: int) -> tuple[str, float]:
    """Send ``sig`` once a temporary output exists in ``out`` (``when="temp"``) or progress
    stage ``when`` starts; ``(stdout, seconds from the signal to the exit)``."""
    deadline = time.monotonic() + 120
    if when == "temp":
        while time.monotonic() < deadline and proc.poll() is None:
            if any(".part-" in p.name or ".staged-" in p.name for p in out.iterdir()):
                break
            time.sleep(0.01)
    else:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line).get("stage") == when:
                break
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(sig)
    sent = time.monotonic()
    stdout = proc.communicate(timeout=120)[0]
    return stdout, time.monotonic() - sent
