"""The plugin's Docker backend: the exact ``docker run`` command and path translation."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chm_plugin.backends import docker as backend
from chm_plugin.backends.docker import DockerPathError, DockerSettings, build_docker_run

from .docker_helpers import ROOT

NAME = "canopygaps-0123456789abcdef0123456789abcdef"


def _infer_request(tmp_path: Path) -> tuple[dict, list[str], list[str]]:
    data, models, out = tmp_path / "data", tmp_path / "models", tmp_path / "results"
    request = {
        "version": 1,
        "command": "infer",
        "params": {
            "input": str(data / "dsm.tif"),
            "model": str(models / "gaps.safetensors"),
            "output": str(out / "gaps.tif"),
            "probabilities": str(out / "probs.tif"),
            "thresholds": [2, 5, 10],
            "device": "auto",
        },
    }
    inputs = [str(data / "dsm.tif"), str(models / "gaps.safetensors")]
    outputs = [str(out / "gaps.tif"), str(out / "probs.tif")]
    return request, inputs, outputs


def test_exact_argv(tmp_path: Path) -> None:
    request, inputs, outputs = _infer_request(tmp_path)
    settings = DockerSettings(
        image="canopygaps:gpu", gpus=True, docker="/usr/bin/docker", extra_args=["--shm-size", "1g"]
    )
    inv = build_docker_run(
        request, settings, inputs, outputs, container_name=NAME, user="1000:1000"
    )
    translated = {
        "version": 1,
        "command": "infer",
        "params": {
            "input": "/in/0/dsm.tif",
            "model": "/in/1/gaps.safetensors",
            "output": "/out/0/gaps.tif",
            "probabilities": "/out/0/probs.tif",
            "thresholds": [2, 5, 10],
            "device": "auto",
        },
    }
    assert inv.argv == [
        "/usr/bin/docker", "run", "--rm", "--init",
        "--name", NAME,
        "--label", "org.canopygaps.backend=plugin",
        "--network", "none",
        "-u", "1000:1000",
        "--gpus", "all",
        "-v", f"{tmp_path}/data:/in/0:ro",
        "-v", f"{tmp_path}/models:/in/1:ro",
        "-v", f"{tmp_path}/results:/out/0",
        "--shm-size", "1g",
        "canopygaps:gpu",
        "request", "--json", json.dumps(translated, separators=(",", ":")), "--jsonl",
    ]  # fmt: skip
    assert inv.container_name == NAME
    assert inv.stop_argv == ["/usr/bin/docker", "stop", "-t", "5", NAME]
    assert inv.kill_argv == ["/usr/bin/docker", "kill", NAME]
    assert inv.request == translated
    assert (tmp_path / "results").is_dir()  # created before Docker would create it as root
    assert request["params"]["input"] == str(tmp_path / "data" / "dsm.tif")  # not mutated


def test_defaults_uuid_name_and_uid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0xABC))
    monkeypatch.setattr(backend.os, "getuid", lambda: 1234, raising=False)
    monkeypatch.setattr(backend.os, "getgid", lambda: 99, raising=False)
    inv = build_docker_run({"command": "diagnostics", "params": {}}, DockerSettings(), [], [])
    name = "canopygaps-" + uuid.UUID(int=0xABC).hex
    assert inv.argv == [
        "docker", "run", "--rm", "--init", "--name", name,
        "--label", "org.canopygaps.backend=plugin", "--network", "none", "-u", "1234:99",
        "canopygaps:cpu", "request", "--json", '{"command":"diagnostics","params":{}}', "--jsonl",
    ]  # fmt: skip
    assert "--gpus" not in inv.argv


def test_unique_names() -> None:
    names = {build_docker_run({"command": "x"}, DockerSettings(), [], []).container_name
             for _ in range(20)}  # fmt: skip
    assert len(names) == 20 and all(n.startswith("canopygaps-") for n in names)


def test_round_trip_and_result_translation(tmp_path: Path) -> None:
    request, inputs, outputs = _infer_request(tmp_path)
    inv = build_docker_run(request, DockerSettings(), inputs, outputs, user="1:1")
    for host in [*inputs, *outputs]:
        container = _container_path(inv, host)
        assert container.startswith(("/in/", "/out/"))
        assert inv.translate_back(container) == host
    result = {
        "output": "/out/0/gaps.tif",
        "figures": ["/out/0/a.png", "/out/0/sub/b.png"],
        "nested": {"model": "/in/1/gaps.safetensors", "count": 3, "flag": True},
        "other": "/opt/elsewhere.txt",
        "text": "gap <= 5 m",
    }
    assert inv.translate_result(result) == {
        "output": str(tmp_path / "results" / "gaps.tif"),
        "figures": [str(tmp_path / "results" / "a.png"), str(tmp_path / "results/sub/b.png")],
        "nested": {
            "model": str(tmp_path / "models" / "gaps.safetensors"),
            "count": 3,
            "flag": True,
        },
        "other": "/opt/elsewhere.txt",
        "text": "gap <= 5 m",
    }
    assert inv.translate_back("/out/0") == str(tmp_path / "results")
    assert inv.translate_back("/out/01/x") == "/out/01/x"  # not a mount: unchanged
    assert inv.translate_back("relative/x.tif") == "relative/x.tif"
    event = {"event": "error", "type": "InputError", "message": "Cannot read /in/0/dsm.tif.",
             "hint": "Check '/in/0/dsm.tif' exists"}  # fmt: skip
    host_dsm = str(tmp_path / "data" / "dsm.tif")
    assert inv.translate_event(event)["message"] == f"Cannot read {host_dsm}."
    assert inv.translate_event(event)["hint"] == f"Check '{host_dsm}' exists"
    done = inv.translate_event({"event": "result", "data": {"output": "/out/0/gaps.tif"}})
    assert done["data"]["output"] == str(tmp_path / "results" / "gaps.tif")


def _container_path(inv: backend.DockerInvocation, host: str) -> str:
    found = [v for k, v in inv.request["params"].items() if isinstance(v, str) and
             inv.translate_back(v) == host and v != host]  # fmt: skip
    assert found, host
    return found[0]


def test_shared_folder_and_folders_and_undeclared_paths(tmp_path: Path) -> None:
    """Input and output in one folder; a dataset folder input; a path under a mount."""
    (tmp_path / "work").mkdir()
    dsm, out = tmp_path / "work" / "dsm.tif", tmp_path / "work" / "gaps.tif"
    dataset = tmp_path / "datasets" / "ds1"
    request = {
        "command": "x",
        "params": {
            "input": str(dsm),
            "output": str(out),
            "dataset": str(dataset),
            "reference": str(tmp_path / "work" / "chm.tif"),  # undeclared, under a mount
            "list": [str(dsm), "name"],
            "vsi": "/vsicurl/https://example.org/a.tif",
        },
    }
    inv = build_docker_run(request, DockerSettings(), [str(dsm), str(dataset)], [str(out)], user="")
    params = inv.request["params"]
    assert params["input"] == "/in/0/dsm.tif"  # read through the read-only mount
    assert params["output"] == "/out/0/gaps.tif"
    assert params["dataset"] == "/in/1/ds1"
    assert params["reference"] == "/out/0/chm.tif"
    assert params["list"] == ["/in/0/dsm.tif", "name"]
    assert params["vsi"] == "/vsicurl/https://example.org/a.tif"
    volumes = [inv.argv[i + 1] for i, a in enumerate(inv.argv) if a == "-v"]
    assert volumes == [
        f"{tmp_path}/work:/in/0:ro",
        f"{tmp_path}/datasets:/in/1:ro",
        f"{tmp_path}/work:/out/0",
    ]
    assert "-u" not in inv.argv  # user="" keeps the image's user


def test_relative_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    request = {"command": "x", "params": {"input": "dsm.tif", "output": "out/gaps.tif"}}
    inv = build_docker_run(request, DockerSettings(), ["dsm.tif"], ["out/gaps.tif"], user="")
    assert inv.request["params"] == {"input": "/in/0/dsm.tif", "output": "/out/0/gaps.tif"}
    assert f"{tmp_path}:/in/0:ro" in inv.argv
    assert f"{tmp_path}/out:/out/0" in inv.argv
    assert inv.translate_back("/out/0/gaps.tif") == str(tmp_path / "out" / "gaps.tif")


def test_path_outside_mounts_is_an_error(tmp_path: Path) -> None:
    request = {"command": "x", "params": {"input": "/somewhere/else.tif"}}
    with pytest.raises(DockerPathError, match=r"/somewhere/else\.tif"):
        build_docker_run(request, DockerSettings(), [], [str(tmp_path / "o.tif")])
    with pytest.raises(DockerPathError, match="cannot mount"):
        build_docker_run({"command": "x", "params": {}}, DockerSettings(), ["/a:b/c.tif"], [])


def test_windows_paths_do_not_crash(tmp_path: Path) -> None:
    request = {"command": "x", "params": {"input": r"C:\data\dsm.tif", "output": r"D:\out\g.tif"}}
    inv = build_docker_run(
        request, DockerSettings(), [r"C:\data\dsm.tif"], [r"D:\out\g.tif"], user=""
    )
    assert inv.request["params"] == {"input": "/in/0/dsm.tif", "output": "/out/0/g.tif"}
    assert "C:\\data:/in/0:ro" in inv.argv and "D:\\out:/out/0" in inv.argv
    assert inv.translate_back("/out/0/sub/g.tif") == r"D:\out\sub\g.tif"
    # An undeclared one is refused with the same clear error as any unmounted path.
    with pytest.raises(DockerPathError, match="neither an input nor an output"):
        build_docker_run({"command": "x", "params": {"p": r"E:\x"}}, DockerSettings(), [], [])


def test_stop_container_falls_back_to_kill(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    script = tmp_path / "docker"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = kill ] && exit 0\nexit 1\n')
    script.chmod(0o755)
    inv = build_docker_run({"command": "x"}, DockerSettings(docker=str(script)), [], [],
                           container_name="c1")  # fmt: skip
    assert backend.stop_container(inv) is True
    assert log.read_text().splitlines() == ["stop -t 5 c1", "kill c1"]


def test_module_is_pure_python() -> None:
    """No qgis, no torch: the runner and the tests import it anywhere."""
    source = (ROOT / "chm_plugin" / "backends" / "docker.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "json", "ntpath", "os", "posixpath", "re", "subprocess",
                        "uuid", "collections", "dataclasses", "typing"}  # fmt: skip
    code = (
        "import sys, chm_plugin.backends.docker; "
        "print('qgis' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
