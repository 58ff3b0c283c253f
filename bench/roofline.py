"""Roofline: achieved model FLOP/s against the same process's matmul FLOP/s.

* FLOPs per pixel of every registered model (default arguments), counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on one tile (2 FLOPs per multiply-add).
* Matmul FLOP/s: ``torch.mm`` of two ``n x n`` matrices (``2 n^3`` FLOPs) in fp32 and bf16,
  median of several runs: the practical peak of this device and dtype.
* Model FLOP/s: FLOPs of one tile / time of its forward pass through the engine's
  :class:`~engine.inference.predictor.Predictor` (inference_mode, channels_last, batch 1;
  bf16 = autocast), and its fraction of the matmul FLOP/s of the same dtype.

The default model (the benchmark model file) is measured at fp32 and bf16 on every device;
the other registered models too (full mode only) on 256 px tiles with fewer runs (one run when
a forward pass takes over 5 s).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench import workloads
from bench.common import Context, figure, log, timed

NAME = "roofline"
SLOW_S = 5.0
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def count_flops(model: Any, tile: int, device: str = "cpu") -> int:
    """FLOPs of one forward pass of ``model`` on a ``1 x C x tile x tile`` input."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, int(getattr(model, "in_channels", 1)), tile, tile, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def matmul_flops(device: str, dtype: str, n: int, repeats: int) -> list[float]:
    """FLOP/s samples of ``torch.mm`` on ``n x n`` matrices."""
    import torch

    dt = getattr(torch, DTYPES[dtype])
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dt)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dt)

    def step() -> None:
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return [2.0 * n**3 / s for s in timed(step, repeats, warmup=2)]


def forward_seconds(
    model: Any, device: str, precision: str, tile: int, repeats: int
) -> tuple[list[float], str]:
    """Seconds per forward pass of one tile through the engine's Predictor."""
    from engine.inference.device import choose_device
    from engine.inference.predictor import Predictor

    choice = choose_device(device, precision)
    predictor = Predictor(model, model.thresholds, choice)
    x = (
        np.random.default_rng(0)
        .standard_normal((1, model.in_channels, tile, tile))
        .astype(np.float32)
    )
    t0 = time.perf_counter()
    predictor(x)  # warm-up (oneDNN primitives for this shape and dtype)
    if time.perf_counter() - t0 > SLOW_S:
        repeats = 1  # a pathologically slow kernel: one sample is enough
    return timed(lambda: predictor(x), repeats, warmup=0), choice.precision


def run(ctx: Context) -> dict[str, Any]:
    import torch

    from engine.models.modelfile import load_model
    from engine.models.registry import available_models, build_model

    s = ctx.settings
    cmd = ctx.bench_command(NAME)
    figures: list[dict[str, Any]] = []
    notes: list[str] = []
    tile = s.roofline_tile
    model_path, kind = workloads.model_file(ctx.work)
    default_model, desc = load_model(model_path)
    models: list[tuple[str, Any, int, int]] = [("default", default_model, s.roofline_repeats, tile)]
    torch.manual_seed(0)
    for name in available_models():
        try:
            m = build_model(name, thresholds=desc.thresholds).eval()
        except Exception as exc:  # a model that cannot be built is reported, not fatal
            notes.append(f"{name}: cannot build ({exc})")
            continue
        flops = count_flops(m, tile)
        figures.append(
            figure(
                f"flops_per_px.{name}",
                "MFLOP/px",
                flops / tile**2 / 1e6,
                better="lower",
                command=cmd,
                tile=tile,
                flops_per_tile=flops,
                args=m.args,
            )
        )
        if s.roofline_time_all and m.architecture != default_model.architecture:
            models.append((name, m, max(1, s.roofline_repeats // 2), min(tile, 256)))
    flops_of = {name: count_flops(m, mtile) for name, m, _, mtile in models}  # on the CPU
    for device in ctx.devices:
        peak = {}
        for dtype in DTYPES:
            log(f"roofline: matmul {dtype} on {device}")
            samples = matmul_flops(device, dtype, s.matmul_n, max(3, s.roofline_repeats))
            peak[dtype] = float(np.median(samples))
            figures.append(
                figure(
                    f"matmul.{device}.{dtype}",
                    "GFLOP/s",
                    [v / 1e9 for v in samples],
                    command=cmd,
                    n=s.matmul_n,
                    device=device,
                )
            )
        for name, model, repeats, mtile in models:
            flops = flops_of[name]
            for precision in DTYPES:
                log(f"roofline: {name} forward {precision} on {device}")
                secs, used = forward_seconds(model, device, precision, mtile, repeats)
                achieved = [flops / t for t in secs]
                common = {
                    "tile": mtile,
                    "batch_size": 1,
                    "device": device,
                    "precision": used,
                    "flops_per_tile": flops,
                    "channels_last": True,
                }
                figures.append(
                    figure(
                        f"model.{name}.{device}.{precision}.gflop_s",
                        "GFLOP/s",
                        [a / 1e9 for a in achieved],
                        command=cmd,
                        **common,
                    )
                )
                figures.append(
                    figure(
                        f"model.{name}.{device}.{precision}.fraction_of_matmul",
                        "fraction",
                        [a / peak[precision] for a in achieved],
                        command=cmd,
                        matmul_gflop_s=round(peak[precision] / 1e9, 2),
                        **common,
                    )
                )
                figures.append(
                    figure(
                        f"model.{name}.{device}.{precision}.forward_mpx_s",
                        "Mpx/s",
                        [mtile * mtile / 1e6 / t for t in secs],
                        command=cmd,
                        **common,
                    )
                )
    notes.append(f"default = {kind}")
    return {"figures": figures, "targets": [], "notes": notes}
