"""The GPU check (``bench/gpu_check.sh``) runs end to end on the CPU in smoke mode, writes one
well-formed JSON report, and its figures merge into results.json / README only when asked.

No timing is asserted: only that every stage ran, the report's structure and that the CPU run
says it is not a GPU run. The stage guards (budget, errors) and the size choice are unit-tested.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import gpu_check, gpu_infer, gpu_results
from bench.io_only import RulePredictor
from engine.inference.device import choose_device

from .bench_helpers import run_in_repo

ROOT = Path(__file__).resolve().parents[2]
STAGES = {"environment", "workload", "warmup", "inference", "agreement", "training", "cuda_tests"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("gpucheck")
    out = tmp / "out"
    proc = run_in_repo(
        ["bash", "bench/gpu_check.sh", "--smoke", "--work", str(tmp / "work")],
        OUT=str(out),
        PYTHON=sys.executable,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (out / "gpu_check.log").is_file()
    return json.loads((out / "gpu_check.json").read_text(encoding="utf-8")), out / "gpu_check.json"


def test_smoke_report_has_every_stage(smoke: tuple[dict, Path]) -> None:
    report, _ = smoke
    assert report["schema"] == gpu_check.SCHEMA and report["mode"] == "smoke"
    assert report["cuda"] is False and "not GPU figures" in report["note"]
    assert set(report["stages"]) == STAGES
    assert all(s["status"] == "ok" for s in report["stages"].values()), report["stages"]
    assert report["environment"]["machine"]["python"]
    assert report["workload"]["size"] == gpu_check.PLANS["smoke"].size


def test_smoke_inference_runs_and_breakdown(smoke: tuple[dict, Path]) -> None:
    report, _ = smoke
    runs = report["inference"]
    for name in ("e2e_bf16", "io_only", "e2e_fp32"):
        assert runs[name]["mpx_s"] > 0 and runs[name]["size"] == 128, name
        parts = runs[name]["breakdown"]
        assert {"surface_s", "forward_s", "reader_wait_s", "stitch_mask_write_s"} <= set(parts)
    assert runs["io_only"]["result"]["runtime"] == "none (I/O only)"
    assert runs["io_only"]["breakdown"]["forward_s"] < runs["e2e_fp32"]["breakdown"]["forward_s"]
    assert runs["e2e_bf16"]["result"]["precision"] == "bf16"
    # on the CPU auto means batch 1 and one reader: the GPU-only variants are not repeated
    assert "same settings" in runs["io_only_1reader"]["skipped"]
    agreement = report["agreement"]["per_threshold"]
    assert len(agreement) == 5 and all(v["agreement_pct"] > 99 for v in agreement.values())


def test_smoke_training_and_tests(smoke: tuple[dict, Path]) -> None:
    report, _ = smoke
    plan = gpu_check.PLANS["smoke"]
    train = report["training"]
    assert train["steps_total"] == plan.train_steps + plan.train_warmup
    assert train["tiles_s"] > 0 and train["losses_finite"]
    tests = report["cuda_tests"]
    assert tests["tests"] >= 4 and tests["skipped"] == tests["tests"]  # no CUDA here
    summary = report["summary"]
    assert summary["device"].startswith("cpu")
    assert all(t["informational"] for t in summary["targets"])
    assert summary["figures"]["e2e_over_io_only"] > 0


def test_results_merge_refuses_cpu_and_names_the_device(
    smoke: tuple[dict, Path], tmp_path: Path
) -> None:
    _, path = smoke
    results, readme = tmp_path / "results.json", tmp_path / "README.md"
    shutil.copy(ROOT / "bench" / "results.json", results)
    shutil.copy(ROOT / "README.md", readme)
    before = readme.read_text(encoding="utf-8")
    args = [str(path), "--results", str(results), "--readme", str(readme)]
    assert gpu_results.main(args) == 2  # a CPU report is no GPU figure
    assert readme.read_text(encoding="utf-8") == before
    assert gpu_results.main([*args, "--allow-cpu"]) == 0
    data = json.loads(results.read_text(encoding="utf-8"))
    entry = data["benchmarks"]["gpu_check"]
    assert {"inference", "training"} <= set(data["benchmarks"])  # the others are kept
    names = {f["name"] for f in entry["figures"]}
    assert {"gpu.e2e_bf16_mpx_s", "gpu.io_only_mpx_s", "gpu.e2e_over_io_only"} <= names
    assert any(t["name"] == "gpu.e2e_gpx_per_min" for t in data["targets"])
    assert "gpu_check" in results.with_suffix(".md").read_text(encoding="utf-8")
    text = readme.read_text(encoding="utf-8")
    assert text.count(gpu_results.START) == 1 and "without CUDA" in text
    assert gpu_results.main([*args, "--allow-cpu"]) == 0  # idempotent: the block is replaced
    assert readme.read_text(encoding="utf-8") == text


def test_stage_guard_skips_and_records_errors(tmp_path: Path) -> None:
    plan = gpu_check.PLANS["smoke"]
    check = gpu_check.Check(tmp_path / "r.json", plan, False, "test")
    assert check.stage("late", lambda: 1, needs_s=plan.budget_s + 60) is None
    assert check.report["stages"]["late"]["status"] == "skipped"

    def boom() -> None:
        raise ValueError("broken stage")

    assert check.stage("bad", boom) is None
    assert check.stage("good", lambda: {"x": 1}) == {"x": 1}
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert (
        saved["stages"]["bad"]["status"] == "error"
        and "broken stage" in (saved["stages"]["bad"]["error"])
    )
    assert saved["good"] == {"x": 1} and saved["stages"]["good"]["status"] == "ok"


def test_size_shrinks_to_fit_the_budget() -> None:
    warm = {"e2e_bf16": {"seconds": 0.5}, "io_only": {"seconds": 0.3}}  # at 2048 px
    # 0.8 s per 4.2 Mpx: 16k needs 51 s, 8k 13 s
    assert gpu_infer.choose_size(16384, warm, 2048, 60.0) == 16384
    assert gpu_infer.choose_size(16384, warm, 2048, 40.0) == 8192
    assert gpu_infer.choose_size(16384, warm, 2048, 0.01) == 256
    assert gpu_infer.choose_size(1024, warm, 2048, 600.0) == 1024


def test_rule_predictor_is_the_height_rule() -> None:
    pred = RulePredictor([2.0, 5.0], 10.0, choose_device("cpu", "fp32"))
    x = np.array([[[[0.1, 0.3, 0.6]]]], dtype=np.float32)  # 1, 3 and 6 m above the low surface
    logits = pred(x)
    assert logits.shape == (1, 2, 1, 3) and logits.dtype == np.float32
    assert ((logits > 0) == np.array([[[[1, 0, 0]], [[1, 1, 0]]]], dtype=bool)).all()
    assert pred.tiles == 1 and pred.forward_seconds >= 0


def test_readme_block_goes_into_the_benchmarks_section() -> None:
    text = "# x\n\n## Benchmarks\n\nfigures\n\n## Development\n\nmore\n"
    merged = gpu_results.merge_readme(text, f"{gpu_results.START}\nnew\n{gpu_results.END}")
    assert merged.index("figures") < merged.index("new") < merged.index("## Development")
    again = gpu_results.merge_readme(merged, f"{gpu_results.START}\nnewer\n{gpu_results.END}")
    assert "newer" in again and "\nnew\n" not in again


def test_agreement_skipped_when_a_run_is_missing(tmp_path: Path) -> None:
    check = gpu_check.Check(tmp_path / "r.json", gpu_check.PLANS["smoke"], False, "test")
    value = check.stage(
        "agreement", lambda: gpu_infer.mask_agreement(tmp_path / "a.tif", tmp_path / "b.tif")
    )
    assert "a.tif" in value["stage_skipped"]
    assert check.report["stages"]["agreement"]["status"] == "skipped"
