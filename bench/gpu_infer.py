"""Inference stages of the GPU check (:mod:`bench.gpu_check`): end to end and I/O only.

Every run is ``engine infer`` in this process (:func:`engine.inference.command.run_infer`,
imports and CUDA start-up paid by an untimed warm-up run on a small raster), timed from the call
to its return: model load, low-surface pass, streamed prediction, writing the uint8 masks. The
I/O-only run is the same call with :class:`bench.io_only.RulePredictor` instead of the model.
Each run is cancelled (the engine's own cancel) when the stage's deadline passes, so a run that
is far slower than planned cannot eat the device time of the stages after it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import workloads
from bench.child import _proc_status, _reset_peak
from bench.io_only import make_rule_predictor
from engine.errors import Cancelled

# (name, precision, I/O only, overrides of the engine's stream settings); in priority order
RUNS: list[tuple[str, str, bool, dict[str, int]]] = [
    ("e2e_bf16", "bf16", False, {}),
    ("io_only", "fp32", True, {}),
    ("e2e_fp32", "fp32", False, {}),
    ("io_only_1reader", "fp32", True, {"reader_threads": 1}),
    ("e2e_bf16_batch1_1reader", "bf16", False, {"batch_size": 1, "reader_threads": 1}),
]
FALLBACK_SIZES = (16384, 8192, 4096, 2048, 1024, 512, 256)


def _cuda() -> Any:
    import torch

    return torch.cuda if torch.cuda.is_available() else None


def infer_once(
    dsm: Path, out: Path, device: str, precision: str, io_only: bool, deadline: float, **over: Any
) -> dict[str, Any]:
    """One timed ``engine infer`` run writing ``out`` (in ``<work>/gpu_check/``: the model is
    the work folder's, :func:`bench.workloads.model_file`); the dict holds wall seconds, Mpx/s,
    the engine's result and log, peak GPU memory and peak RSS growth."""
    from engine.config.base import from_dict
    from engine.events import CallbackReporter
    from engine.inference.command import run_infer
    from engine.inference.config import InferConfig

    model, _ = workloads.model_file(out.parent.parent)
    params = {"dsm": str(dsm), "model": str(model), "output": str(out), "device": device}
    params.update(precision=precision, runtime="torch", **over)
    config = from_dict(InferConfig, params)
    logs: list[str] = []
    reporter = CallbackReporter(
        lambda e: logs.append(e["message"]) if e.get("event") == "log" else None,
        is_cancelled=lambda: time.monotonic() > deadline,
    )
    cuda = _cuda()
    if cuda is not None:
        cuda.synchronize()
        cuda.reset_peak_memory_stats()
    rss0 = _proc_status().get("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    result = run_infer(config, reporter, make_rule_predictor if io_only else None)
    seconds = time.perf_counter() - t0
    hwm = _proc_status().get("VmHWM")
    raster = result["rasters"][0]
    mpx = raster["width"] * raster["height"] / 1e6
    return {
        "seconds": round(seconds, 3),
        "mpx_s": round(mpx / seconds, 3),
        "gpx_per_min": round(mpx / seconds * 60 / 1000, 4),
        "size": raster["width"],
        "io_only": io_only,
        "params": {k: v for k, v in params.items() if k not in ("dsm", "model", "output")},
        "gpu_memory_peak_mb": _mb(cuda.max_memory_allocated()) if cuda else None,
        "gpu_memory_reserved_peak_mb": _mb(cuda.max_memory_reserved()) if cuda else None,
        "rss_growth_peak_mb": _mb(hwm - rss0) if reset and hwm and rss0 else None,
        "breakdown": breakdown(raster, seconds),
        "result": {k: v for k, v in result.items() if k != "rasters"} | {"raster": raster},
        "log": logs,
    }


def _mb(value: float) -> float:
    return round(value / 2**20, 1)


def breakdown(raster: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Where the wall time went: the surface pass, and within the prediction stage the forward
    passes (with copies), waiting for the reader threads and the rest of the main thread
    (stitching, masks, writing); ``other`` is model load, checks and closing the files."""
    surface, predict = raster["seconds_surface"], raster["seconds_predict"]
    fwd, wait = raster.get("forward_seconds", 0.0), raster.get("seconds_reader_wait", 0.0)
    parts = {
        "surface_s": surface,
        "forward_s": fwd,
        "reader_wait_s": wait,
        "stitch_mask_write_s": round(max(0.0, predict - fwd - wait), 3),
        "other_s": round(max(0.0, seconds - surface - predict), 3),
    }
    return parts | {
        "shares": {k[:-2]: round(v / seconds, 3) for k, v in parts.items() if seconds > 0},
        "batch_size": raster.get("batch_size"),
        "reader_threads": raster.get("reader_threads"),
    }


def warm_up(work: Path, size: int, device: str, deadline: float) -> dict[str, Any]:
    """Untimed-in-spirit first runs on a small raster: imports, CUDA context, cuDNN set-up; their
    speeds give the first estimate of the large runs' times."""
    dsm = workloads.dsm(work, size, min(size, 1024))
    out_dir = work / "gpu_check"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, precision, io_only, over in RUNS[:3]:
        runs[name] = infer_once(
            dsm, out_dir / f"warm_{name}.tif", device, precision, io_only, deadline, **over
        )
    return runs


def choose_size(wanted: int, warm: dict[str, Any], warm_size: int, seconds_left: float) -> int:
    """The largest size (at most ``wanted``) whose first two runs (end to end bf16 and I/O only)
    fit in ``seconds_left``, estimated from the warm-up speeds (pessimistic: their fixed costs
    are counted as if they grew with the raster)."""
    per_px = sum(warm[n]["seconds"] for n in ("e2e_bf16", "io_only")) / warm_size**2
    for size in FALLBACK_SIZES:
        if size <= wanted and per_px * size * size <= seconds_left:
            return size
    return min(wanted, FALLBACK_SIZES[-1])


def run_all(work: Path, size: int, device: str, deadline: float, workers: int) -> dict[str, Any]:
    """The runs of :data:`RUNS` on the ``size`` raster, each only when its estimated time (from
    the runs done so far) still fits before ``deadline``; skipped ones say why."""
    dsm = workloads.dsm(work, size, min(size, 1024), workers=workers)
    out_dir = work / "gpu_check"
    runs: dict[str, Any] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, precision, io_only, over in RUNS:
        key = (precision, io_only, *_settings(device, over))
        if key in seen:  # e.g. on the CPU, where auto means batch 1 and one reader already
            runs[name] = {"skipped": f"same settings as {seen[key]} on {device}"}
            continue
        seen[key] = name
        done = [r["seconds"] for r in runs.values() if isinstance(r, dict) and "seconds" in r]
        estimate = max(done) if done else 0.0
        left = deadline - time.monotonic()
        if done and estimate > left:
            runs[name] = {"skipped": f"estimated {estimate:.0f} s, {left:.0f} s left"}
            continue
        out = out_dir / f"{name}.tif"
        try:
            runs[name] = infer_once(dsm, out, device, precision, io_only, deadline, **over)
        except Cancelled:
            runs[name] = {"error": "cancelled at the stage's deadline (far slower than planned)"}
        except Exception as exc:  # recorded; the other runs still go
            runs[name] = {"error": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"}
        if name not in ("e2e_bf16", "e2e_fp32"):
            out.unlink(missing_ok=True)  # the two model outputs are compared afterwards
    return runs


def _settings(device: str, over: dict[str, int]) -> tuple[int, int]:
    """``(batch size, reader threads)`` the engine resolves for a run with ``over``."""
    from engine.inference.config import InferConfig, stream_settings

    config = InferConfig(dsm=Path("x.tif"), model=Path("m"), output=Path("o.tif"), **over)
    return stream_settings(config, device)


def mask_agreement(a: Path, b: Path, rows: int = 1024) -> dict[str, Any]:
    """Pixel agreement of two gap-mask rasters per threshold band (valid in both), with the
    gap IoU; read by row blocks. ``{"stage_skipped": why}`` when a run wrote no mask."""
    from engine.io.raster import RasterReader

    missing = [p.name for p in (a, b) if not p.is_file()]
    if missing:
        return {"stage_skipped": f"no {', '.join(missing)}: that inference run did not finish"}

    out: dict[str, Any] = {}
    with RasterReader(a) as ra, RasterReader(b) as rb:
        h, w, count = ra.info.height, ra.info.width, ra.info.count
        for band in range(1, count + 1):
            same = valid = both = either = 0
            for r0 in range(0, h, rows):
                n = min(rows, h - r0)
                va, oka = ra.read_window(r0, 0, n, w, band)
                vb, okb = rb.read_window(r0, 0, n, w, band)
                ok = oka & okb
                ga, gb = (va == 1) & ok, (vb == 1) & ok
                valid += int(ok.sum())
                same += int((ok & (va == vb)).sum())
                both += int((ga & gb).sum())
                either += int((ga | gb).sum())
            name = ra.info.band_descriptions[band - 1] or f"band {band}"
            out[name] = {
                "agreement_pct": round(100.0 * same / valid, 4) if valid else None,
                "gap_iou": round(both / either, 6) if either else None,
                "valid_px": valid,
            }
    values = [v["agreement_pct"] for v in out.values() if v["agreement_pct"] is not None]
    return {"per_threshold": out, "min_agreement_pct": min(values) if values else None}
