"""The same model exported to ONNX and run with onnxruntime, against the torch paths.

The benchmark model file is exported with the engine's exporter
(:func:`engine.models.export.export_onnx`, dynamic batch/height/width) and run with
onnxruntime's CPU execution provider (all graph optimisations, intra-op threads = torch's
thread count) on the same real tiles: normalised tiles of the generated ``seam_size`` DSM cut
by the engine's streaming code. Compared with torch fp32 and bf16 autocast through the engine's
Predictor (inference_mode, channels_last, batch 1) and with the faster of the two (the engine's
best CPU path: ``precision=auto`` picks it by timing). Reported: Mpx/s of each, the speed ratio
onnxruntime / torch (> 1 = onnxruntime faster), max |logit difference| and mask agreement.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench import workloads
from bench.common import Context, figure, log

NAME = "onnx"


def sample_tiles(ctx: Context, tile: int, count: int) -> np.ndarray:
    """Up to ``count`` real model-input tiles ``[N, C, tile, tile]`` of the seam DSM."""
    from engine.data.tiling import TilePlan, auto_margin
    from engine.features.inputs import transform_for
    from engine.inference.stream import read_strip
    from engine.io.raster import RasterReader
    from engine.models.modelfile import read_description

    model_path, _ = workloads.model_file(ctx.work)
    desc = read_description(model_path)
    dsm = workloads.dsm(ctx.work, ctx.settings.seam_size, ctx.settings.base_size)
    with RasterReader(dsm, "DSM") as reader:
        info = reader.info
        depth = int(desc.architecture.get("args", {}).get("depth", 4))
        plan = TilePlan(info.height, info.width, tile, auto_margin(depth, tile), 0, 2**depth)
        transform = transform_for(desc, info.pixel_size)
        transform.prepare(reader.read_window, info.height, info.width)
        tiles = []
        for k in range(plan.n_rows):
            tiles.append(read_strip(reader.read_window, plan, k, transform).tiles)
            if sum(len(t) for t in tiles) >= count:
                break
    return np.concatenate(tiles)[:count]


def time_passes(fn: Any, tiles: np.ndarray, repeats: int) -> list[float]:
    """Seconds per pass over all tiles (batch 1), after one warm-up tile."""
    fn(tiles[:1])
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(len(tiles)):
            fn(tiles[i : i + 1])
        out.append(time.perf_counter() - t0)
    return out


def run(ctx: Context) -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        return {
            "figures": [],
            "targets": [],
            "notes": ["onnxruntime is not installed: skipped"],
            "status": "skipped",
        }
    import torch

    from engine.inference.device import choose_device
    from engine.inference.predictor import Predictor
    from engine.models.export import export_onnx
    from engine.models.modelfile import load_model

    s = ctx.settings
    cmd = ctx.bench_command(NAME)
    tile = s.onnx_tile
    model_path, kind = workloads.model_file(ctx.work)
    model, desc = load_model(model_path)
    onnx_path = ctx.work / "models" / f"{model_path.stem}-{tile}.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"onnx: exporting {model_path.name} -> {onnx_path.name}")
    t0 = time.perf_counter()
    export_onnx(model, onnx_path, desc, tile)
    export_s = time.perf_counter() - t0
    tiles = sample_tiles(ctx, tile, 9 if not ctx.quick else 2)
    mpx = len(tiles) * tile * tile / 1e6
    figures: list[dict[str, Any]] = []
    common = {"tile": tile, "tiles": len(tiles), "batch_size": 1, "device": "cpu"}

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    thresholds = np.asarray(desc.thresholds, dtype=np.float32)

    def run_ort(x: np.ndarray) -> np.ndarray:
        feeds = {"input": x}
        if "thresholds" in inputs:
            feeds["thresholds"] = thresholds
        return np.asarray(session.run(["logits"], feeds)[0])

    log("onnx: timing onnxruntime")
    t_ort = time_passes(run_ort, tiles, s.onnx_repeats)
    from bench.roofline import count_flops

    flops = count_flops(model, tile)
    figures.append(
        figure(
            "onnxruntime.cpu.fp32.gflop_s",
            "GFLOP/s",
            [len(tiles) * flops / t / 1e9 for t in t_ort],
            command=cmd,
            note="model FLOPs (torch count) / onnxruntime time",
            flops_per_tile=flops,
            **common,
        )
    )
    figures.append(
        figure(
            "onnxruntime.cpu.fp32.mpx_s",
            "Mpx/s",
            [mpx / t for t in t_ort],
            command=cmd,
            export_seconds=round(export_s, 2),
            onnxruntime=ort.__version__,
            threads=opts.intra_op_num_threads,
            **common,
        )
    )
    reference = np.concatenate([run_ort(tiles[i : i + 1]) for i in range(len(tiles))])
    torch_times: dict[str, list[float]] = {}
    for precision in ("fp32", "bf16"):
        choice = choose_device("cpu", precision)
        predictor = Predictor(model, desc.thresholds, choice)
        log(f"onnx: timing torch {precision}")
        t_torch = time_passes(predictor, tiles, s.onnx_repeats)
        torch_times[precision] = t_torch
        figures.append(
            figure(
                f"torch.cpu.{precision}.mpx_s",
                "Mpx/s",
                [mpx / t for t in t_torch],
                command=cmd,
                precision=precision,
                channels_last=True,
                **common,
            )
        )
        out = np.concatenate([predictor(tiles[i : i + 1]) for i in range(len(tiles))])
        figures.append(
            figure(
                f"max_abs_logit_diff.onnxruntime_vs_torch_{precision}",
                "logit",
                float(np.max(np.abs(out - reference))),
                better="lower",
                command=cmd,
                **common,
            )
        )
        figures.append(
            figure(
                f"mask_agreement.onnxruntime_vs_torch_{precision}",
                "%",
                100.0 * float(np.mean((out > 0) == (reference > 0))),
                command=cmd,
                **common,
            )
        )
    best = min(torch_times, key=lambda k: float(np.median(torch_times[k])))
    for label, key in (("fp32", "fp32"), ("bf16", "bf16"), ("best", best)):
        figures.append(
            figure(
                f"onnxruntime_over_torch_{label}",
                "x",
                [b / a for a, b in zip(t_ort, torch_times[key], strict=True)],
                command=cmd,
                note="speed ratio onnxruntime fp32 / torch "
                + (f"best CPU path = {best}" if label == "best" else label)
                + " (> 1: onnxruntime faster)",
                torch_precision=key,
                **common,
            )
        )
    return {"figures": figures, "targets": [], "notes": [f"model: {kind}"]}
