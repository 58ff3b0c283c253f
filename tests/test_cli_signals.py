"""SIGTERM during ``canopygaps infer``: exit code 130, a cancel error event, nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.inference.helpers import save, smooth_dsm, tiny_unet, write_dsm

ROOT = Path(__file__).resolve().parents[1]


def _events_until_predicting(proc: subprocess.Popen[str], limit_s: float) -> list[dict]:
    """JSON-lines events of ``proc`` up to the first progress of the prediction stage."""
    assert proc.stdout is not None
    events: list[dict] = []
    deadline = time.monotonic() + limit_s
    for line in proc.stdout:
        events.append(json.loads(line))
        last = events[-1]
        if last["event"] == "progress" and last["stage"] == "predict" and last["value"] > 0:
            return events
        assert time.monotonic() < deadline, f"no prediction progress within {limit_s} s"
    raise AssertionError(f"the command ended before predicting: {events}")


def test_sigterm_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    dsm = write_dsm(tmp_path / "dsm.tif", smooth_dsm(1024, 1024, seed=2))
    model = save(tiny_unet(), tmp_path / "unet.safetensors")
    dest = tmp_path / "dest"
    dest.mkdir()
    argv = [sys.executable, "-m", "engine", "infer", "--jsonl", "--dsm", str(dsm)]
    argv += ["--model", str(model), "--output", str(dest / "gaps.tif")]
    argv += ["--probabilities", str(dest / "prob.tif"), "--polygons", str(dest / "gaps.gpkg")]
    argv += ["--tile_size", "64", "--runtime", "torch", "--precision", "fp32"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        events = _events_until_predicting(proc, limit_s=120)
        assert events[-1]["value"] < 0.5  # mid-run: outputs are being written
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    tail = [json.loads(line) for line in out.splitlines()]
    assert tail and tail[-1]["event"] == "error" and "cancel" in tail[-1]["message"].lower()
    assert sorted(p.name for p in dest.rglob("*")) == []  # no output, no .part-* file
