"""End-to-end inference throughput (Mpx/s) and the share of time spent in the forward pass.

Each run is one ``engine infer`` / ``engine classical`` command on a generated DSM in a fresh
process (:mod:`bench.child`); the figure is ``width x height / wall time of the command``
(model load, low-surface pass, streamed prediction, writing the uint8 masks; interpreter
start and imports excluded). For the model, the same process then times the pure forward pass
of the same tiles (same plan, batch, runtime and precision as the run) and reports

* ``e2e_over_forward`` = end-to-end seconds / pure forward seconds (target <= 1.25), and
* ``forward_share`` = its inverse (the share of end-to-end time the model needs).

The model runs with the engine's defaults (``runtime=auto``: onnxruntime fp32 on the CPU when
installed, torch on GPUs; ``precision=auto``: bf16/fp16 on GPUs; the runtime and precision each
run used are recorded) and batch 1. The 1k² raster also runs with ``runtime=torch`` and
``runtime=onnxruntime`` in fp32 side by side (``onnxruntime_over_torch``: end-to-end and
pure-forward speed ratios, > 1 = onnxruntime faster) and with torch bf16. The ONNX export is
made once before the timed runs (its cache lives in ``<work>/cache`` unless
``CANOPYGAPS_CACHE`` is set); its time is reported as ``onnx_export.seconds``. On a machine with
CUDA every default model run is repeated on the GPU.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import workloads
from bench.common import Context, cli_line, figure, log, run_child, target

NAME = "inference"
E2E_LIMIT = 1.25
_EXPORTS: dict[str, float | None] = {}  # model file -> export seconds (None: was cached)


def onnx_available() -> bool:
    """True when the engine can run ``runtime=onnxruntime`` here."""
    from engine.inference.onnx_predictor import onnxruntime_available

    return onnxruntime_available()


def warm_onnx_cache(ctx: Context) -> float | None:
    """Export the benchmark model to the ONNX cache once, before any timed run (so no run
    pays the one-time export); returns the export seconds (None when it was already cached).
    Sets ``CANOPYGAPS_CACHE`` to ``<work>/cache`` for this process and its children unless set.
    """
    os.environ.setdefault("CANOPYGAPS_CACHE", str(ctx.work / "cache"))
    model_path, _ = workloads.model_file(ctx.work)
    key = str(model_path)
    if key not in _EXPORTS and onnx_available():
        from engine.inference.device import choose_device
        from engine.inference.onnx_predictor import OnnxPredictor
        from engine.models.modelfile import load_model

        model, desc = load_model(model_path)
        t0 = time.perf_counter()
        pred = OnnxPredictor.from_model(
            model, desc, model_path, desc.thresholds, choose_device("cpu", "fp32")
        )
        seconds = time.perf_counter() - t0
        _EXPORTS[key] = None if pred.info.get("onnx_cache_hit") else seconds
        log(f"onnx cache: {'already there' if _EXPORTS[key] is None else f'{seconds:.1f} s'}")
    return _EXPORTS.get(key)


def label_of(method: str, device: str, precision: str, runtime: str) -> str:
    """Figure name prefix: ``model.cpu.auto``, ``model.cpu.fp32-onnxruntime``, ``classical.cpu``."""
    if method != "model":
        return f"{method}.{device}"
    return f"{method}.{device}.{precision}" + ("" if runtime == "auto" else f"-{runtime}")


def request(
    ctx: Context, method: str, size: int, device: str, precision: str, runtime: str = "auto"
) -> tuple[str, dict[str, Any]]:
    """``(engine command, params)`` of one inference run."""
    dsm = workloads.dsm(ctx.work, size, ctx.settings.base_size)
    out = ctx.work / "out" / f"{method}_{size}_{device}_{precision}_{runtime}.tif"
    if method == "classical":
        return "classical", {"dsm": str(dsm), "output": str(out)}
    model, _ = workloads.model_file(ctx.work)
    return "infer", {
        "dsm": str(dsm),
        "model": str(model),
        "output": str(out),
        "device": device,
        "precision": precision,
        "runtime": runtime,
        "tile_size": ctx.settings.tile,
        "batch_size": 1,
    }


def runs(
    ctx: Context,
    method: str,
    size: int,
    device: str,
    precision: str,
    repeats: int,
    runtime: str = "auto",
) -> list[dict[str, Any]]:
    """At least ``repeats`` child reports for this configuration (cached in ``ctx``)."""
    key = (method, size, device, precision, runtime)
    done = ctx.infer_runs.setdefault(key, [])
    command, params = request(ctx, method, size, device, precision, runtime)
    out = Path(params["output"])
    out.parent.mkdir(parents=True, exist_ok=True)
    if method == "model":
        warm_onnx_cache(ctx)
    while len(done) < repeats:
        log(
            f"{command} {size}^2 px on {device} ({precision}, runtime {runtime}), "
            f"run {len(done) + 1}/{repeats}"
        )
        spec: dict[str, Any] = {"command": command, "params": params}
        if command == "infer":
            spec["forward"] = {"sample": ctx.settings.forward_sample}
        report = run_child(spec)
        report["engine_command"] = cli_line(command, params)
        done.append(report)
        out.unlink(missing_ok=True)
    return done[:repeats]


def configurations(ctx: Context) -> list[tuple[str, int, str, str, str, int]]:
    """``(method, size, device, precision, runtime, runs)`` of every configuration."""
    s = ctx.settings
    out = []
    for size in s.infer_sizes:
        repeats = s.repeats.get(size, 1)
        for device in ctx.devices:
            out.append(("model", size, device, "auto", "auto", repeats))
            if device != "cpu":
                continue
            if size in s.runtime_sizes or size in s.precision_sizes:
                out.append(("model", size, device, "fp32", "torch", min(2, repeats)))
                if onnx_available():
                    out.append(("model", size, device, "fp32", "onnxruntime", min(2, repeats)))
            if size in s.precision_sizes:
                out.append(("model", size, device, "bf16", "torch", min(2, repeats)))
        out.append(("classical", size, "cpu", "fp32", "auto", repeats))
    return out


def runtime_ratios(ctx: Context) -> list[dict[str, Any]]:
    """``onnxruntime_over_torch`` figures (fp32, CPU) for the sizes run both ways."""
    figures = []
    for size in ctx.settings.infer_sizes:
        torch_runs = ctx.infer_runs.get(("model", size, "cpu", "fp32", "torch"))
        ort_runs = ctx.infer_runs.get(("model", size, "cpu", "fp32", "onnxruntime"))
        if not torch_runs or not ort_runs:
            continue
        pairs = list(zip(torch_runs, ort_runs, strict=False))
        common = {
            "size": size,
            "torch_command": torch_runs[0]["engine_command"],
            "onnxruntime_command": ort_runs[0]["engine_command"],
        }
        figures.append(
            figure(
                f"model.cpu.onnxruntime_over_torch.{size}.e2e_speedup",
                "x",
                [t["seconds"] / o["seconds"] for t, o in pairs],
                command=ctx.bench_command(NAME),
                note="end-to-end seconds torch fp32 / onnxruntime fp32 (> 1: onnxruntime faster)",
                **common,
            )
        )
        figures.append(
            figure(
                f"model.cpu.onnxruntime_over_torch.{size}.forward_speedup",
                "x",
                [
                    t["forward"]["seconds_all_tiles"] / o["forward"]["seconds_all_tiles"]
                    for t, o in pairs
                ],
                command=ctx.bench_command(NAME),
                note="pure forward seconds torch fp32 / onnxruntime fp32 (same tiles)",
                **common,
            )
        )
    return figures


def run(ctx: Context) -> dict[str, Any]:
    figures: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    notes: list[str] = []
    _, model_kind = workloads.model_file(ctx.work)
    notes.append(f"model: {model_kind}")
    export_s = warm_onnx_cache(ctx)
    if export_s is not None:
        figures.append(
            figure(
                "onnx_export.seconds",
                "s",
                [export_s],
                better="lower",
                command=ctx.bench_command(NAME),
                note="one-time ONNX export + check of the model (cached for later runs)",
            )
        )
    for method, size, device, precision, runtime, repeats in configurations(ctx):
        reports = runs(ctx, method, size, device, precision, repeats, runtime)
        mpx = size * size / 1e6
        first = reports[0]
        res = first["result"]
        label = label_of(method, device, precision, runtime)
        params: dict[str, Any] = {
            "size": size,
            "method": method,
            "device": res.get("device", device),
            "engine_command": first["engine_command"],
        }
        if method == "model":
            params.update(
                precision=precision,
                precision_used=[r["result"].get("precision") for r in reports],
                runtime=runtime,
                runtime_used=[r["result"].get("runtime") for r in reports],
                threads=res.get("threads"),
                batch_size=1,
                tile_size=res.get("tile_size") or ctx.settings.tile,
                tiles=(res.get("rasters") or [{}])[0].get("tiles"),
                pipeline_forward_share=[(r["result"].get("forward_share")) for r in reports],
            )
        note = "1 run (largest raster)" if repeats == 1 and not ctx.quick else ""
        figures.append(
            figure(
                f"{label}.{size}.mpx_s",
                "Mpx/s",
                [mpx / r["seconds"] for r in reports],
                command=ctx.bench_command(NAME),
                note=note,
                **params,
            )
        )
        figures.append(
            figure(
                f"{label}.{size}.seconds",
                "s",
                [r["seconds"] for r in reports],
                better="lower",
                command=ctx.bench_command(NAME),
                size=size,
            )
        )
        stage = [r["result"].get("mpx_per_s") for r in reports]
        if all(v for v in stage):
            figures.append(
                figure(
                    f"{label}.{size}.engine_reported_mpx_s",
                    "Mpx/s",
                    stage,
                    command=ctx.bench_command(NAME),
                    note="the engine's own figure: prediction stage only"
                    if method == "model"
                    else "the engine's own figure",
                    size=size,
                    seconds_surface=[
                        r["result"].get("rasters", [{}])[0].get("seconds_surface") for r in reports
                    ],
                )
            )
        if method != "model":
            continue
        fwd = [r["forward"] for r in reports]
        ratios = [r["seconds"] / f["seconds_all_tiles"] for r, f in zip(reports, fwd, strict=True)]
        sampled = fwd[0]["tiles_timed"] < fwd[0]["tiles_total"]
        how = f"pure forward ({fwd[0].get('runtime', 'torch')})"
        fnote = (
            f"{how} timed on {fwd[0]['tiles_timed']} of {fwd[0]['tiles_total']} tiles, "
            "scaled to all tiles"
            if sampled
            else f"{how} timed on all {fwd[0]['tiles_total']} tiles"
        )
        figures.append(
            figure(
                f"{label}.{size}.forward_mpx_s",
                "Mpx/s",
                [mpx / f["seconds_all_tiles"] for f in fwd],
                command=ctx.bench_command(NAME),
                note=fnote + " (raster Mpx / forward time of its tiles)",
                size=size,
                tile_size=fwd[0]["tile_size"],
                tiles=fwd[0]["tiles_total"],
            )
        )
        figures.append(
            figure(
                f"{label}.{size}.e2e_over_forward",
                "x",
                ratios,
                better="lower",
                command=ctx.bench_command(NAME),
                note=fnote,
                size=size,
            )
        )
        figures.append(
            figure(
                f"{label}.{size}.forward_share",
                "fraction",
                [1.0 / x for x in ratios],
                command=ctx.bench_command(NAME),
                size=size,
            )
        )
        if precision == "auto" and runtime == "auto":
            targets.append(
                target(
                    f"{label}.{size}.e2e_over_forward",
                    statistics.median(ratios),
                    E2E_LIMIT,
                    f"end-to-end time <= {E2E_LIMIT} x pure forward time of the same tiles "
                    f"({size}^2 px, {device})",
                    informational=ctx.quick,
                )
            )
    figures.extend(runtime_ratios(ctx))
    return {"figures": figures, "targets": targets, "notes": notes}
