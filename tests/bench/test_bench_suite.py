"""The benchmark suite runs end to end in --quick mode and writes well-formed results.

No timing is asserted (CI never gates on absolute speed): only the structure of
``results.json`` / ``results.md``, that every benchmark ran, and that each figure carries its
statistics, command and parameters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .bench_helpers import run_in_repo

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = {"inference", "memory", "seams", "roofline", "onnx", "training", "preprocessing"}
FIGURE_KEYS = {"name", "unit", "median", "min", "max", "q1", "q3", "runs", "samples", "command"}
# the quick suite takes 75 s of CPU: make test-all (RUN_SLOW=1) or make bench
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    args = ["--quick", "--cpu-only", "--out", str(out), "--work", str(tmp / "work")]
    proc = run_in_repo([sys.executable, "-m", "bench.run", *args])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8")), out


def _figures(data: dict, bench: str) -> dict[str, dict]:
    return {f["name"]: f for f in data["benchmarks"][bench]["figures"]}


def test_header_and_machine(results: tuple[dict, Path]) -> None:
    data, _ = results
    assert data["schema"] == "canopygaps-bench"
    assert data["mode"] == "quick"
    assert data["command"].startswith("python -m bench.run")
    m = data["machine"]
    for key in ("cpu_model", "logical_cores", "torch", "onnxruntime", "devices", "torch_threads"):
        assert key in m, key
    assert m["devices"][0] == "cpu"


def test_every_benchmark_ran(results: tuple[dict, Path]) -> None:
    data, _ = results
    assert set(data["benchmarks"]) == BENCHMARKS
    for name, bench in data["benchmarks"].items():
        assert bench["status"] in ("ok", "skipped"), (name, bench.get("error"))
        assert bench["command"] == f"python -m bench.run --only {name} --quick"
        if bench["status"] == "ok":
            assert bench["figures"], name


def test_figures_have_statistics(results: tuple[dict, Path]) -> None:
    data, _ = results
    for bench in data["benchmarks"].values():
        for f in bench["figures"]:
            assert set(f) >= FIGURE_KEYS, f["name"]
            assert f["runs"] == len(f["samples"]) >= 1
            assert f["min"] <= f["median"] <= f["max"], f["name"]
            assert f["q1"] <= f["q3"]
            assert f["command"].startswith("python -m bench.run --only")


def test_expected_figures(results: tuple[dict, Path]) -> None:
    data, _ = results
    infer = _figures(data, "inference")
    sizes = data["settings"]["infer_sizes"]
    for size in sizes:
        assert f"classical.cpu.{size}.mpx_s" in infer
        model = [n for n in infer if n.startswith("model.cpu.") and n.endswith(f".{size}.mpx_s")]
        assert model, infer.keys()
        assert infer[model[0]]["params"]["engine_command"].startswith("canopygaps infer")
        assert any(n.endswith(f".{size}.e2e_over_forward") for n in infer)
        assert any(n.endswith(f".{size}.forward_share") for n in infer)
    memory = _figures(data, "memory")
    assert any(n.startswith("model.cpu.peak_rss_growth") for n in memory)
    assert any(n.startswith("classical.cpu.peak_rss_growth") for n in memory)
    seams = _figures(data, "seams")
    crop = seams["crop.fp32.{}.mask_agreement".format(data["settings"]["seam_size"])]
    assert 0 <= crop["median"] <= 100
    roof = _figures(data, "roofline")
    for name in ("flops_per_px.unet", "matmul.cpu.fp32", "matmul.cpu.bf16"):
        assert name in roof
    assert roof["flops_per_px.unet"]["median"] > 0
    assert "model.default.cpu.fp32.fraction_of_matmul" in roof
    assert "model.default.cpu.bf16.fraction_of_matmul" in roof
    for size in data["settings"].get("runtime_sizes", []):
        assert f"model.cpu.fp32-torch.{size}.mpx_s" in infer
        if data["benchmarks"]["onnx"]["status"] == "ok":
            ort = infer[f"model.cpu.fp32-onnxruntime.{size}.mpx_s"]
            assert set(ort["params"]["runtime_used"]) == {"onnxruntime"}
            assert f"model.cpu.onnxruntime_over_torch.{size}.e2e_speedup" in infer
            assert f"model.cpu.onnxruntime_over_torch.{size}.forward_speedup" in infer
    if data["benchmarks"]["onnx"]["status"] == "ok":
        onnx = _figures(data, "onnx")
        assert "onnxruntime_over_torch_fp32" in onnx
        assert "onnxruntime_over_torch_best" in onnx
    train = _figures(data, "training")
    assert "cpu.fp32.tiles_s" in train and "cpu.bf16.tiles_s" in train
    assert "cpu.fp32.epoch_seconds" in train
    prep = _figures(data, "preprocessing")
    assert any(n.startswith("labels.") for n in prep)
    assert any(n.startswith("tiling.") for n in prep)


def test_targets(results: tuple[dict, Path]) -> None:
    data, _ = results
    names = {t["name"] for t in data["targets"]}
    assert any(n.endswith("e2e_over_forward") for n in names)
    assert "model.cpu.peak_rss_growth" in names
    for t in data["targets"]:
        assert {"value", "limit", "passed", "description"} <= set(t)
        assert t["informational"] is True  # quick mode never judges


def test_markdown(results: tuple[dict, Path]) -> None:
    data, out = results
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| figure | median | min - max | runs | unit |" in md
    assert "## Targets" in md
    assert data["machine"]["cpu_model"] in md
