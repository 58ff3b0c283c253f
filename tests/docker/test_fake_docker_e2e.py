"""The Docker backend end to end through ``tests/docker/fake_docker`` (no Docker engine needed).

``fake_docker`` parses the real ``docker run`` command line, checks the mounts, and runs the
image's entry point (the engine CLI) locally with the container paths mapped back to the host,
so these tests prove the protocol, the path translation both ways, read-only inputs and cancel.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from chm_plugin.backends.docker import DockerSettings, build_docker_run

from .docker_helpers import FAKE_DOCKER, ROOT, events_of, fake_log, run_argv

SETTINGS = DockerSettings(docker=str(FAKE_DOCKER))


def _request(command: str, **params: Any) -> dict[str, Any]:
    return {"version": 1, "command": command, "params": params}


def _result(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events[-1]["event"] == "result", events[-3:]
    return events[-1]["data"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic scene (dsm.tif, chm.tif...) written in-process."""
    from engine.api import run

    folder = tmp_path_factory.mktemp("data") / "scene"
    run("synth", {"output": str(folder), "size": 128, "seed": 1, "gaps": 4})
    return folder


def test_fake_docker_info_and_images(fake_env: dict[str, str]) -> None:
    info = run_argv([str(FAKE_DOCKER), "info"], fake_env)
    assert info.returncode == 1 and "no engine" in info.stderr
    ok = run_argv([str(FAKE_DOCKER), "info", "--format", "{{json .Runtimes}}"],
                  {**fake_env, "FAKE_DOCKER_INFO_OK": "1", "FAKE_DOCKER_GPUS": "1"})  # fmt: skip
    assert ok.returncode == 0 and "nvidia" in json.loads(ok.stdout)
    assert (
        run_argv([str(FAKE_DOCKER), "image", "inspect", "canopygaps:cpu"], fake_env).returncode == 0
    )
    missing = run_argv([str(FAKE_DOCKER), "image", "inspect", "nope:1"], fake_env)
    assert missing.returncode == 1 and "No such image" in missing.stderr


def test_diagnostics_through_fake_docker(fake_env: dict[str, str]) -> None:
    inv = build_docker_run(_request("diagnostics"), SETTINGS, [], [])
    done = run_argv(inv.argv, fake_env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    assert {e["event"] for e in events} <= {"progress", "log", "result"}
    data = _result(events)
    assert data["engine"] and "cuda_available" in data
    assert fake_log(fake_env)[-1]["argv"] == inv.argv[1:]


def test_synth_end_to_end(tmp_path: Path, fake_env: dict[str, str]) -> None:
    target = tmp_path / "results" / "scene"
    inv = build_docker_run(_request("synth", output=str(target), size=32, seed=2, gaps=2),
                           SETTINGS, [], [str(target)])  # fmt: skip
    assert inv.request["params"]["output"] == "/out/0/scene"
    done = run_argv(inv.argv, fake_env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    raw = _result(events)
    assert (
        raw["output"] == "/out/0/scene" and raw["dsm"] == "/out/0/scene/dsm.tif"
    )  # as seen inside
    host = inv.translate_result(raw)
    assert host["output"] == str(target)
    for key in ("dsm", "dtm", "chm", "scene"):
        assert Path(host[key]).is_file() and Path(host[key]).parent == target
    log = next(e for e in events if e["event"] == "log")
    assert str(target) in inv.translate_event(log)["message"]


def test_classical_reads_read_only_inputs(
    tmp_path: Path, fake_env: dict[str, str], scene: Path
) -> None:
    out = tmp_path / "maps" / "gaps.tif"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in scene.iterdir())
    request = _request("classical", dsm=str(scene / "dsm.tif"), output=str(out), thresholds=[2, 5])
    inv = build_docker_run(request, SETTINGS, [str(scene / "dsm.tif")], [str(out)])
    assert f"{scene}:/in/0:ro" in inv.argv and f"{out.parent}:/out/0" in inv.argv
    done = run_argv(inv.argv, fake_env)
    assert done.returncode == 0, done.stderr
    result = inv.translate_result(_result(events_of(done.stdout)))
    assert result["outputs"] == [str(out)] and out.is_file()
    assert result["rasters"][0]["dsm"] == str(scene / "dsm.tif")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in scene.iterdir()) == before


def test_infer_with_two_input_folders(
    tmp_path: Path, fake_env: dict[str, str], scene: Path
) -> None:
    """The plugin's main request: a DSM and a model file from two folders, two outputs."""
    import torch

    from engine.models.modelfile import ModelDescription, save_model
    from engine.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2).eval()
    model_path = tmp_path / "models" / "tiny.safetensors"
    model_path.parent.mkdir()
    save_model(model_path, model, ModelDescription.from_model(model, tile_size=64, pixel_size=1.0))
    gaps, probs = tmp_path / "maps" / "gaps.tif", tmp_path / "maps" / "probs.tif"
    request = _request("infer", dsm=str(scene / "dsm.tif"), model=str(model_path),
                       output=str(gaps), probabilities=str(probs), tile_size=64)  # fmt: skip
    inv = build_docker_run(
        request, SETTINGS, [str(scene / "dsm.tif"), str(model_path)], [str(gaps), str(probs)]
    )
    assert inv.request["params"]["model"] == "/in/1/tiny.safetensors"
    done = run_argv(inv.argv, fake_env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    assert any(e["event"] == "progress" for e in events)
    result = inv.translate_result(_result(events))
    assert result["outputs"] == [str(gaps)] and gaps.is_file() and probs.is_file()
    assert result["rasters"][0]["probabilities"] == str(probs)


def test_engine_error_event_is_translated(tmp_path: Path, fake_env: dict[str, str]) -> None:
    missing = tmp_path / "data" / "missing.tif"
    missing.parent.mkdir()
    out = tmp_path / "maps" / "gaps.tif"
    request = _request("classical", dsm=str(missing), output=str(out), thresholds=[2])
    inv = build_docker_run(request, SETTINGS, [str(missing)], [str(out)])
    done = run_argv(inv.argv, fake_env)
    assert done.returncode == 1
    error = events_of(done.stdout)[-1]
    assert error["event"] == "error" and error["type"] != "Cancelled"
    raw = error["message"] + error["hint"]
    assert str(missing) not in raw  # the container's view...
    translated = inv.translate_event(error)
    assert "/in/0/" not in translated["message"] + translated["hint"]  # ...and the user's
    if "/in/0/missing.tif" in raw:
        assert str(missing) in translated["message"] + translated["hint"]
    assert not out.exists()


def test_fake_refuses_writes_to_read_only_mounts(tmp_path: Path, fake_env: dict[str, str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    request = json.dumps(_request("synth", output="/in/0/scene", size=16))
    argv = [str(FAKE_DOCKER), "run", "--rm", "--init", "-v", f"{data}:/in/0:ro", "canopygaps:cpu",
            "request", "--json", request, "--jsonl"]  # fmt: skip
    done = run_argv(argv, fake_env)
    assert done.returncode == 125 and "read-only" in done.stderr
    assert not list(data.iterdir())
    writable_input = [*argv[:4], "-v", f"{data}:/in/0", *argv[6:]]
    assert "must be read-only" in run_argv(writable_input, fake_env).stderr
    host_path = [*argv[:-2], json.dumps(_request("synth", output=str(data / "x"))), "--jsonl"]
    assert "not inside any mount" in run_argv(host_path, fake_env).stderr


def test_fake_snapshot_detects_changes(tmp_path: Path) -> None:
    """The after-run check of read-only mounts (for writes the argument check cannot see)."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("fake_docker_mod", str(FAKE_DOCKER))
    spec = importlib.util.spec_from_loader("fake_docker_mod", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.tif").write_bytes(b"1")
    mounts = [mod.Mount(f"{tmp_path / 'in'}:/in/0:ro")]
    before = mod.snapshot(mounts)
    (tmp_path / "in" / "b.tif").write_bytes(b"2")
    assert set(mod.snapshot(mounts)) - set(before) == {str(tmp_path / "in" / "b.tif")}


def test_gpus_without_nvidia_toolkit_fails_like_docker(fake_env: dict[str, str]) -> None:
    inv = build_docker_run(_request("diagnostics"), DockerSettings(docker=str(FAKE_DOCKER),
                                                                   gpus=True), [], [])  # fmt: skip
    done = run_argv(inv.argv, fake_env)
    assert done.returncode == 125 and "could not select device driver" in done.stderr
    assert run_argv(inv.argv, {**fake_env, "FAKE_DOCKER_GPUS": "1"}).returncode == 0


def _big_dsm(scene: Path, folder: Path, repeat: int) -> Path:
    """A large DSM (the small scene tiled ``repeat`` x ``repeat`` times), written quickly."""
    import numpy as np
    import rasterio

    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(scene / "dsm.tif") as src:
        data, profile = src.read(1), src.profile
    big = np.tile(data, (repeat, repeat))
    profile.update(width=big.shape[1], height=big.shape[0], tiled=True, blockxsize=256,
                   blockysize=256, compress="none")  # fmt: skip
    path = folder / "big_dsm.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(big, 1)
    return path


def test_cancel_stops_the_container(tmp_path: Path, fake_env: dict[str, str], scene: Path) -> None:
    """A long classical run is stopped by name: exit 130 within seconds, no output left."""
    dsm = _big_dsm(scene, tmp_path / "data", repeat=32)  # 4096 x 4096: tens of seconds
    out = tmp_path / "maps" / "gaps.tif"
    request = _request("classical", dsm=str(dsm), output=str(out), thresholds=[2, 5, 10],
                       band_rows=128)  # fmt: skip
    inv = build_docker_run(request, SETTINGS, [str(dsm)], [str(out)])
    proc = subprocess.Popen(
        inv.argv, env=fake_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        events = [json.loads(proc.stdout.readline())]
        while events[-1]["event"] != "progress" or events[-1]["value"] <= 0.0:
            events.append(json.loads(proc.stdout.readline()))  # running: first band done
        assert events[-1]["value"] < 0.5, "the run should still be far from done"
        started = time.monotonic()
        stop = run_argv(inv.stop_argv, fake_env, timeout=60)
        rest, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            run_argv(inv.kill_argv, fake_env, timeout=30)
            proc.kill()
            proc.wait()
    assert stop.returncode == 0 and stop.stdout.strip() == inv.container_name, stop.stderr
    assert proc.returncode == 130, err
    last = events_of(rest)[-1]
    assert last["event"] == "error" and last["type"] == "Cancelled"
    assert elapsed < 10, f"cancel took {elapsed:.1f} s"
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir()], "partial outputs left behind"
    assert run_argv([str(FAKE_DOCKER), "ps"], fake_env).stdout.strip() == ""
    # Stopping again: the container is gone, and stop_container falls back to kill (also fails).
    assert run_argv(inv.stop_argv, fake_env).returncode == 1


# --- docker/run.sh ----------------------------------------------------------------------------
def _path_with(tmp_path: Path, nvidia_smi: bool) -> str:
    bin_dir = tmp_path / ("bin-gpu" if nvidia_smi else "bin-cpu")
    bin_dir.mkdir()
    if nvidia_smi:
        tool = bin_dir / "nvidia-smi"
        tool.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
        tool.chmod(0o755)
        (bin_dir / "nvidia-container-cli").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "nvidia-container-cli").chmod(0o755)
    return os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_run_sh_gpu_auto_detection(tmp_path: Path, fake_env: dict[str, str], gpu: bool) -> None:
    env = {**fake_env, "DOCKER": str(FAKE_DOCKER), "PATH": _path_with(tmp_path, gpu),
           "FAKE_DOCKER_INFO_OK": "1", "FAKE_DOCKER_GPUS": "1" if gpu else "0"}  # fmt: skip
    done = run_argv(["bash", str(ROOT / "docker" / "run.sh"), "--dry-run", "diagnostics"], env,
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = done.stdout.split()
    assert ("--gpus" in argv) is gpu
    assert argv[-2:] == ["canopygaps:gpu" if gpu else "canopygaps:cpu", "diagnostics"]
    assert f"{tmp_path}:/work" in argv and argv[argv.index("-w") + 1] == "/work"
    forced = run_argv(["bash", str(ROOT / "docker" / "run.sh"), "--cpu", "--dry-run", "x"], env)
    assert "--gpus" not in forced.stdout.split()


def test_run_sh_end_to_end(tmp_path: Path, fake_env: dict[str, str]) -> None:
    """docker/run.sh with relative paths (the current folder is /work in the container)."""
    env = {**fake_env, "DOCKER": str(FAKE_DOCKER), "PATH": _path_with(tmp_path, False)}
    argv = ["bash", str(ROOT / "docker" / "run.sh"), "synth", "--output", "scene", "--size", "16",
            "--jsonl"]  # fmt: skip
    done = run_argv(argv, env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _result(events_of(done.stdout))["output"] == "scene"
    assert (tmp_path / "scene" / "dsm.tif").is_file()
