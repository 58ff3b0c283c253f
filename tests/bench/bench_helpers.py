"""Shared by the benchmark tests: run a command in the repository root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_in_repo(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``cmd`` in the repository root (10 min at most), with ``env`` added to the environment
    (OMP_NUM_THREADS defaults to 2); output captured, never raises on a non-zero exit."""
    full = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), **os.environ, **env}
    return subprocess.run(
        cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=600, check=False
    )
