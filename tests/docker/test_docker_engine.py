"""With a real Docker engine: build the CPU image, then run ``infer`` in it via the backend.

Skips where ``docker info`` fails (no engine, as on the project's CI machines); the same
command lines are covered without an engine by ``test_fake_docker_e2e.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chm_plugin.backends.docker import DockerSettings, build_docker_run

from .docker_helpers import ROOT, events_of

IMAGE = os.environ.get("CANOPYGAPS_TEST_IMAGE", "canopygaps:test-cpu")

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def docker() -> str:
    exe = shutil.which("docker")
    if exe is None:
        pytest.skip("no docker client on PATH")
    info = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"no Docker engine ('docker info' failed: {info.stderr.strip()[:200]})")
    return exe


@pytest.fixture(scope="module")
def cpu_image(docker: str) -> str:
    if not os.environ.get("CANOPYGAPS_TEST_IMAGE"):  # build unless an image is given
        build = subprocess.run(
            [docker, "build", "-f", "docker/Dockerfile.cpu", "-t", IMAGE, "."],
            cwd=ROOT,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=3000,
        )
        assert build.returncode == 0, build.stderr[-4000:]
    return IMAGE


def test_infer_in_the_cpu_image(cpu_image: str, docker: str, tmp_path: Path) -> None:
    import torch

    from engine.api import run
    from engine.models.modelfile import ModelDescription, save_model
    from engine.models.registry import build_model

    data, models, out = tmp_path / "data", tmp_path / "models", tmp_path / "results"
    run("synth", {"output": str(data / "scene"), "size": 128, "seed": 3, "gaps": 4})
    models.mkdir()
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2).eval()
    model_path = models / "tiny.safetensors"
    save_model(model_path, model, ModelDescription.from_model(model, tile_size=64, pixel_size=1.0))

    dsm, gaps = data / "scene" / "dsm.tif", out / "gaps.tif"
    request = {
        "version": 1,
        "command": "infer",
        "params": {"dsm": str(dsm), "model": str(model_path), "output": str(gaps), "tile_size": 64},
    }
    inv = build_docker_run(
        request, DockerSettings(image=cpu_image, docker=docker), [str(dsm), str(model_path)],
        [str(gaps)],
    )  # fmt: skip
    done = subprocess.run(inv.argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    events = events_of(done.stdout)
    assert events[-1]["event"] == "result"
    result = inv.translate_result(events[-1]["data"])
    assert str(gaps) in repr(result)
    assert gaps.is_file()
    if hasattr(os, "getuid"):
        assert gaps.stat().st_uid == os.getuid()  # written as the caller, not root
