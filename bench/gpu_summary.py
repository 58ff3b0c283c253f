"""The headline figures and targets of a GPU-check report (:mod:`bench.gpu_check`).

``summarise(report)`` reads the stages' results and returns ``{"device", "figures", "targets",
"lines"}``: flat figures (Mpx/s end to end and I/O only, their ratio, Gpx/min, GPU memory peak,
bf16 vs fp32 mask agreement, training tiles/s, where the time went), the two targets of the
CUDA path (end to end >= 0.7 x I/O only; > 1 Gpx per minute) and readable lines.
"""

from __future__ import annotations

from typing import Any

E2E_OVER_IO_MIN = 0.7
GPX_PER_MIN_MIN = 1.0
PRIMARY = "e2e_bf16"  # precision auto on a CUDA GPU with bf16 (H100, H200)


def device_name(report: dict[str, Any]) -> str:
    """The GPU's name, or ``cpu (<model>)`` for a run without CUDA."""
    env = report.get("environment") or {}
    gpu = env.get("gpu") or {}
    if gpu.get("name"):
        return str(gpu["name"])
    return f"cpu ({(env.get('machine') or {}).get('cpu_model', 'unknown')})"


def _runs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    runs = report.get("inference") or {}
    return {k: v for k, v in runs.items() if isinstance(v, dict) and "mpx_s" in v}


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """Flat figures of the report (absent stages leave their figures out)."""
    runs = _runs(report)
    fig: dict[str, Any] = {"device": device_name(report), "cuda": bool(report.get("cuda"))}
    if runs:
        fig["size_px"] = next(iter(runs.values()))["size"]
    for name, run in runs.items():
        fig[f"{name}_mpx_s"] = run["mpx_s"]
    if PRIMARY in runs:
        fig["e2e_gpx_per_min"] = runs[PRIMARY]["gpx_per_min"]
        fig["e2e_breakdown_s"] = {
            k: v for k, v in runs[PRIMARY]["breakdown"].items() if k.endswith("_s")
        }
        fig["e2e_batch_size"] = runs[PRIMARY]["breakdown"].get("batch_size")
        fig["e2e_reader_threads"] = runs[PRIMARY]["breakdown"].get("reader_threads")
    if PRIMARY in runs and "io_only" in runs:
        fig["e2e_over_io_only"] = round(runs[PRIMARY]["mpx_s"] / runs["io_only"]["mpx_s"], 3)
    peaks = [r["gpu_memory_peak_mb"] for r in runs.values() if r.get("gpu_memory_peak_mb")]
    if peaks:
        fig["gpu_memory_peak_mb"] = max(peaks)
    agreement = report.get("agreement") or {}
    if agreement.get("min_agreement_pct") is not None:
        fig["bf16_vs_fp32_mask_agreement_min_pct"] = agreement["min_agreement_pct"]
    train = report.get("training") or {}
    if train.get("tiles_s"):
        fig["train_tiles_s"] = train["tiles_s"]
        fig["train_setup"] = (
            f"{train.get('precision')}, channels-last, batch {train.get('batch_size')}, "
            f"{train.get('steps_timed')} timed steps, {train.get('dataset')}"
        )
    tests = report.get("cuda_tests") or {}
    if "tests" in tests:
        bad = tests.get("failures", 0) + tests.get("errors", 0)
        fig["cuda_tests"] = {
            "passed": tests["tests"] - bad - tests.get("skipped", 0),
            "failed": bad,
            "skipped": tests.get("skipped", 0),
        }
    return fig


def targets(fig: dict[str, Any], cuda: bool) -> list[dict[str, Any]]:
    """The CUDA path's two targets (informational without CUDA)."""
    out = []
    for name, key, limit, text in (
        (
            "e2e_over_io_only",
            "e2e_over_io_only",
            E2E_OVER_IO_MIN,
            f"end to end >= {E2E_OVER_IO_MIN} x as fast as the I/O-only pass",
        ),
        (
            "e2e_gpx_per_min",
            "e2e_gpx_per_min",
            GPX_PER_MIN_MIN,
            f"end to end > {GPX_PER_MIN_MIN} Gpx per minute",
        ),
    ):
        value = fig.get(key)
        passed = None if value is None else bool(value >= limit)
        out.append(
            {
                "name": name,
                "description": text,
                "value": value,
                "limit": limit,
                "passed": passed,
                "informational": not cuda,
            }
        )
    return out


def lines(fig: dict[str, Any], tgts: list[dict[str, Any]]) -> list[str]:
    """Readable summary lines."""
    out = [f"device: {fig['device']}" + ("" if fig["cuda"] else " (no CUDA: not GPU figures)")]
    if "size_px" in fig:
        rates = ", ".join(f"{k[:-6]} {v}" for k, v in fig.items() if k.endswith("_mpx_s"))
        out.append(f"{fig['size_px']}^2 px, Mpx/s: {rates}")
    for t in tgts:
        verdict = "-" if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
        extra = " (informational)" if t["informational"] else ""
        out.append(f"target {t['description']}: {t['value']} {verdict}{extra}")
    if "e2e_breakdown_s" in fig:
        parts = ", ".join(f"{k[:-2]} {v} s" for k, v in fig["e2e_breakdown_s"].items())
        out.append(
            f"{PRIMARY} time split: {parts} (batch {fig.get('e2e_batch_size')}, "
            f"reader threads {fig.get('e2e_reader_threads')})"
        )
    for key in ("gpu_memory_peak_mb", "bf16_vs_fp32_mask_agreement_min_pct", "train_tiles_s"):
        if key in fig:
            out.append(f"{key}: {fig[key]}")
    if "train_setup" in fig:
        out.append(f"training: {fig['train_setup']}")
    if "cuda_tests" in fig:
        out.append(f"cuda tests: {fig['cuda_tests']}")
    return out


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """``{"device", "figures", "targets", "lines"}`` of a report."""
    fig = figures(report)
    tgts = targets(fig, bool(report.get("cuda")))
    return {"device": fig["device"], "figures": fig, "targets": tgts, "lines": lines(fig, tgts)}
