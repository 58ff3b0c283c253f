"""The CUDA path in one run: ``python -m bench.gpu_check [--out FILE] [--smoke]``.

Meant for one call of a lent GPU machine (``bench/gpu_check.sh`` installs what its image
lacks first; bench/README.md has the exact command). Stages, each timed and guarded, the JSON
written after every one (a run cut short keeps what it measured):

1. ``environment``: GPU (name, memory, SMs), versions, CPU cores, TF32 settings.
2. ``workload``: the synthetic DSM (:func:`bench.workloads.dsm`, 16k x 16k with CUDA).
3. ``inference``: warm-up runs on a small raster, then ``engine infer`` with the default model
   on CUDA in bf16 and fp32 and the I/O-only pass (:mod:`bench.gpu_infer`); the raster shrinks
   when the warm-up says the big one would not fit the budget (``size_reduced`` says so).
4. ``agreement``: bf16 vs fp32 masks, per threshold.
5. ``training``: AMP (bf16) steps per second (:mod:`bench.gpu_train`).
6. ``cuda_tests``: ``pytest -m cuda tests/cuda`` in a child process.

Without CUDA it runs the same stages on the CPU with a 1k x 1k raster (``--smoke``: 256 px
and a few steps, for the test suite); the JSON then says ``"cuda": false`` and its figures are
no GPU figures. Default output: ``$OUT/gpu_check.json`` when ``OUT`` is set (the device
tool brings back what is under ``$OUT``), else ``bench/work/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, log
from bench.gpu_summary import summarise

SCHEMA = "canopygaps-gpu-check"
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes, step counts and time budget of one mode."""

    mode: str
    size: int  # DSM side in px of the timed inference runs (shrinks to fit the budget)
    warm_size: int  # DSM side of the warm-up runs
    train_precision: str  # bf16 (AMP); fp32 in smoke mode (bf16 kernels of new shapes
    # take seconds to set up on the CPU: 6 s per step of 64 px tiles here)
    train_steps: int
    train_warmup: int
    train_batch: int
    train_tile: int
    demo_size: int  # synthetic scene of the training dataset
    budget_s: float  # the whole Python run
    reserve_train_s: float  # kept free for training by the inference stage
    reserve_tests_s: float  # kept free for the CUDA tests (also their timeout)


PLANS = {
    "cuda": Plan("cuda", 16384, 2048, "bf16", 300, 20, 16, 128, 1024, 390.0, 60.0, 75.0),
    "cpu": Plan("cpu", 1024, 256, "bf16", 10, 2, 4, 128, 512, 600.0, 90.0, 90.0),
    "smoke": Plan("smoke", 128, 128, "fp32", 3, 1, 2, 64, 256, 300.0, 60.0, 120.0),
}


def default_out() -> Path:
    """``$OUT/gpu_check.json`` when ``OUT`` is set, else ``bench/work/gpu_check.json``."""
    out = os.environ.get("OUT")
    return Path(out) / "gpu_check.json" if out else BENCH_DIR / "work" / "gpu_check.json"


class Check:
    """Runs stages against one deadline and rewrites the JSON report after each."""

    def __init__(self, out: Path, plan: Plan, cuda: bool, command: str) -> None:
        self.out, self.plan = out, plan
        self.t_start = time.monotonic()
        self.deadline = self.t_start + plan.budget_s
        self.report: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command,
            "mode": plan.mode,
            "cuda": cuda,
            "plan": dataclasses.asdict(plan),
            "stages": {},
        }
        if not cuda:
            self.report["note"] = (
                f"No CUDA GPU: CPU fallback ({plan.mode} plan, {plan.size} px raster). These "
                "figures are not GPU figures."
            )

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.deadline - time.monotonic()

    def stage(self, name: str, fn: Callable[[], Any], needs_s: float = 0.0) -> Any:
        """Run ``fn`` as stage ``name`` (skipped when less than ``needs_s`` is left); its
        return value goes into the report under ``name`` (a dict with ``stage_skipped``: the
        stage had nothing to do, and says why); errors are recorded, not raised."""
        entry: dict[str, Any] = {"status": "ok"}
        self.report["stages"][name] = entry
        if self.left() < needs_s:
            entry.update(status="skipped", reason=f"{self.left():.0f} s left, needs {needs_s:.0f}")
            self.write()
            return None
        log(f"gpu check: {name} ({self.left():.0f} s left)")
        t0 = time.monotonic()
        value = None
        try:
            value = fn()
            self.report[name] = value
            if isinstance(value, dict) and "stage_skipped" in value:
                entry.update(status="skipped", reason=value["stage_skipped"])
        except Exception as exc:
            entry.update(
                status="error",
                error=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}",
                traceback=traceback.format_exc()[-3000:],
            )
            log(f"gpu check: {name} failed: {entry['error']}")
        entry["seconds"] = round(time.monotonic() - t0, 1)
        self.write()
        return value

    def write(self) -> None:
        """Write the report (atomically) with its summary."""
        self.report["seconds"] = round(time.monotonic() - self.t_start, 1)
        self.report["summary"] = summarise(self.report)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.report, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.out)


def environment() -> dict[str, Any]:
    """Machine, versions and the GPU as torch sees it."""
    import torch

    from bench.common import machine
    from engine.diagnostics import collect
    from engine.inference.device import choose_device

    env: dict[str, Any] = {"machine": machine(), "diagnostics": collect()}
    env["python_executable"] = sys.executable
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_precision": torch.get_float32_matmul_precision(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "describe": choose_device("cuda", "auto").describe(),
        }
    return env


def cuda_tests(timeout: float) -> dict[str, Any]:
    """``pytest -m cuda tests/cuda`` in a child process: counts, failures, the output's end."""
    import subprocess
    import tempfile
    import xml.etree.ElementTree as ET

    root = BENCH_DIR.parent
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/cuda"]
        cmd += ["-p", "no:cacheprovider", f"--junitxml={xml}", "-o", "addopts=-ra"]
        proc = subprocess.run(
            cmd, cwd=root, capture_output=True, text=True, timeout=timeout, check=False
        )
        out: dict[str, Any] = {"command": " ".join(cmd[1:]), "exit_code": proc.returncode}
        out["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
        if xml.is_file():
            suite = ET.parse(xml).getroot()
            suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
            if suite is not None:
                out.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors")})
                out["skipped"] = int(suite.get("skipped", 0))
                out["cases"] = {
                    c.get("name"): _outcome(c) for c in suite.iter("testcase") if c.get("name")
                }
    return out


def _outcome(case: Any) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


def run_check(out: Path, work: Path, plan: Plan, cuda: bool, command: str) -> dict[str, Any]:
    """All stages (workloads and outputs in ``work``); returns the report (also in ``out``)."""
    from bench import gpu_infer, gpu_train

    check = Check(out, plan, cuda, command)
    device = "cuda" if cuda else "cpu"
    workers = max(1, min(8, os.cpu_count() or 1))
    check.stage("environment", environment)
    check.stage("workload", lambda: _workload(work, plan, workers))
    reserve = plan.reserve_train_s + plan.reserve_tests_s + 20.0
    infer_deadline = time.monotonic() + max(0.0, check.left() - reserve)
    warm = check.stage(
        "warmup", lambda: gpu_infer.warm_up(work, plan.warm_size, device, infer_deadline)
    )
    size = plan.size
    if warm:
        size = gpu_infer.choose_size(
            plan.size, warm, plan.warm_size, infer_deadline - time.monotonic()
        )
    check.report["inference_size"] = {"wanted": plan.size, "used": size}
    if size != plan.size:
        check.report["inference_size"]["size_reduced"] = "the warm-up predicted no time for it"
    check.stage("inference", lambda: gpu_infer.run_all(work, size, device, infer_deadline, workers))
    out_dir = work / "gpu_check"
    check.stage(
        "agreement",
        lambda: gpu_infer.mask_agreement(out_dir / "e2e_fp32.tif", out_dir / "e2e_bf16.tif"),
        needs_s=10.0,
    )
    train_deadline = check.deadline - plan.reserve_tests_s
    check.stage(
        "training",
        lambda: gpu_train.train_speed(work, device, plan, train_deadline),
        needs_s=plan.reserve_tests_s + 15.0,
    )
    check.stage("cuda_tests", lambda: cuda_tests(max(30.0, check.left())), needs_s=30.0)
    for name in ("e2e_fp32", "e2e_bf16"):
        (out_dir / f"{name}.tif").unlink(missing_ok=True)
    check.write()
    return check.report


def _workload(work: Path, plan: Plan, workers: int) -> dict[str, Any]:
    from bench import workloads

    t0 = time.monotonic()
    path = workloads.dsm(work, plan.size, min(plan.size, 1024), workers=workers)
    model, kind = workloads.model_file(work)
    return {
        "dsm": str(path),
        "size": plan.size,
        "dsm_mb": round(path.stat().st_size / 2**20, 1),
        "seconds": round(time.monotonic() - t0, 1),
        "model": str(model),
        "model_kind": kind,
        "threads": workers,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.gpu_check", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, default=None, help="JSON report (default: see above)")
    p.add_argument(
        "--work",
        type=Path,
        default=BENCH_DIR / "work",
        help="workloads and outputs (default bench/work, git-ignored; never under $OUT)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny CPU-sized run (tests)")
    p.add_argument("--cpu", action="store_true", help="ignore a CUDA GPU (CPU plan)")
    p.add_argument("--budget-s", type=float, default=None, help="override the plan's budget")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    cuda = torch.cuda.is_available() and not args.cpu and not args.smoke
    plan = PLANS["smoke" if args.smoke else "cuda" if cuda else "cpu"]
    if args.budget_s:
        plan = dataclasses.replace(plan, budget_s=args.budget_s)
    out = args.out or default_out()
    command = "python -m bench.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv)
    report = run_check(out, args.work.resolve(), plan, cuda, command.strip())
    log(f"gpu check: {out} ({report['seconds']} s)")
    for line in report["summary"].get("lines", []):
        print(line)
    failed = [n for n, s in report["stages"].items() if s["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
