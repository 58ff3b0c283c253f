"""DDP: two CPU processes (gloo) under torch.distributed.run end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
_PORT_TROUBLE = (
    "Address already in use",
    "EADDRINUSE",
    "RendezvousConnectionError",
    "DistNetworkError",
)


@pytest.mark.slow  # 16 s of CPU: two torch processes and a rendezvous
def test_two_ranks_hold_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    if proc.returncode != 0 and any(w in proc.stderr for w in _PORT_TROUBLE):
        # another process on a shared machine took the rendezvous port: try once more
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    h0 = json.loads((tmp_path / "history0.json").read_text())
    h1 = json.loads((tmp_path / "history1.json").read_text())
    # 8 tiles / 2 ranks / batch 2 = 2 steps per epoch; metrics are summed over ranks -> equal
    assert h0["steps"] == h1["steps"] == 4
    assert h0["history"][-1]["val_iou"] == h1["history"][-1]["val_iou"]
    assert h0["history"][-1]["train_loss"] == h1["history"][-1]["train_loss"]
    # only rank 0 writes checkpoints
    assert (tmp_path / "ck" / "last.safetensors").is_file()
