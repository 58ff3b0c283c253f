"""Helpers of the Docker tests (a module of its own: ``conftest`` is not importable by name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_DOCKER = HERE / "fake_docker"


def fake_environment(tmp_path: Path) -> dict[str, str]:
    """Environment for ``fake_docker``: this interpreter runs the engine, a private state dir."""
    env = dict(os.environ)
    for key in ("FAKE_DOCKER_INFO_OK", "FAKE_DOCKER_GPUS", "FAKE_DOCKER_IMAGES"):
        env.pop(key, None)
    env.update(
        FAKE_DOCKER_PYTHON=sys.executable,
        FAKE_DOCKER_LOG=str(tmp_path / "fake_docker.log"),
        FAKE_DOCKER_STATE=str(tmp_path / "fake_docker_state"),
        OMP_NUM_THREADS="1",
    )
    return env


def fake_log(env: dict[str, str]) -> list[dict[str, Any]]:
    """The invocations ``fake_docker`` recorded."""
    path = Path(env["FAKE_DOCKER_LOG"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events_of(stdout: str) -> list[dict[str, Any]]:
    """Parse JSON-lines events (every stdout line must be one)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def run_argv(
    argv: list[str], env: dict[str, str], timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, **kw)
