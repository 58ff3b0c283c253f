"""Checkpoints: pickle-free round trip; a SIGKILLed run resumes to bit-identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.training.checkpoint import flatten, load_checkpoint, save_checkpoint, unflatten

WORKER = Path(__file__).with_name("resume_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def test_flatten_round_trip_keeps_types(tmp_path):
    state = {
        "model": {"w": torch.randn(3, 4), "b": torch.zeros(2, dtype=torch.bfloat16)},
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0)}},
            "param_groups": [{"betas": (0.9, 0.99)}],
        },
        "best": float("inf"),
        "lr": 0.1 + 0.2,
        "none": None,
    }
    save_checkpoint(tmp_path / "c.safetensors", state)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["model"]["b"].dtype == torch.bfloat16
    assert list(back["optimizer"]["state"]) == [0]
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert back["best"] == float("inf") and back["lr"] == 0.1 + 0.2 and back["none"] is None
    tensors: dict = {}
    assert unflatten(flatten(state, tensors), tensors)["lr"] == state["lr"]


def test_checkpoint_is_not_a_pickle(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"x": torch.ones(2)})
    head = path.read_bytes()[:16]
    assert not head.startswith(b"\x80")  # pickle protocol marker
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        assert "canopygaps-checkpoint" in fh.metadata()


def _run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(WORKER), str(run_dir), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )


def _epoch_lines(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k not in ("time", "epoch_seconds", "tiles_per_second")}
        for r in recs
    ]


@pytest.mark.slow  # 20 s of CPU; test_in_process_resume_equals_straight_run is the quick one
def test_sigkill_then_resume_gives_identical_weights(tmp_path):
    straight = tmp_path / "straight"
    _run(straight)

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(killed), "--slow-after", "8"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("CKPT 8"):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    resumed = _run(killed)
    first = resumed.stdout.splitlines()[0].split()
    assert first[0] == "RESUME" and int(first[1]) >= 8
    assert int(first[1]) < 18, "the kill happened before the end"

    a = load_checkpoint(straight / "checkpoints" / "last.safetensors")
    b = load_checkpoint(killed / "checkpoints" / "last.safetensors")
    for part in ("model", "optimizer"):
        ta: dict = {}
        tb: dict = {}
        assert flatten(a[part], ta) == flatten(b[part], tb)
        assert ta.keys() == tb.keys()
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{part}/{key}"
    assert a["trainer"] == b["trainer"]
    assert a["scheduler"] == b["scheduler"]
    assert _epoch_lines(straight / "metrics.jsonl") == _epoch_lines(killed / "metrics.jsonl")


@pytest.mark.parametrize("granularity", ["epoch", "step"])
def test_in_process_resume_equals_straight_run(tmp_path, granularity):
    """Same property without subprocesses: stop after k steps, restore into a fresh trainer."""
    from engine.training.callbacks import Checkpointer
    from engine.training.seed import seed_everything
    from engine.training.trainer import Trainer

    from .helpers import MemoryTiles, TinyNet, masked_bce

    def make(folder, max_steps=None):
        seed_everything(1)
        model = TinyNet(dropout=0.3)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        ck = Checkpointer(folder, every_steps=1 if granularity == "step" else 0, every_epochs=1)
        return Trainer(
            model,
            opt,
            masked_bce,
            seed=1,
            batch_size=4,
            epochs=2,
            max_steps=max_steps,
            callbacks=[ck],
        ), ck

    data = MemoryTiles(16, augment=True)
    straight, _ = make(tmp_path / "a")
    straight.fit(data)
    stop_at = 6 if granularity == "step" else 4
    first, ck = make(tmp_path / "b", max_steps=stop_at)
    first.fit(data)
    second, _ = make(tmp_path / "c")
    second.load_state_dict(load_checkpoint(ck.last_path))
    assert second.state.step == stop_at
    second.fit(data)
    for (k, x), y in zip(
        straight.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(x, y), k
