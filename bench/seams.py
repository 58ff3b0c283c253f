"""Seam check: tiled (streamed) inference versus one whole-image forward pass.

On the generated DSM of ``seam_size`` pixels (1k x 1k), the engine's streaming code
(:func:`engine.inference.stream.predict_bands` with the plan ``engine infer`` makes) and a
whole-image pass padded the same way (:func:`engine.inference.stream.predict_whole`) run the
same network on the same normalised input. Reported per blend scheme and precision: mask
agreement (% of valid pixels x thresholds with the same gap/canopy label), max |logit
difference| and that difference relative to the logit spread (p99 - p1 of the whole-image
logits). ``margin 0`` (no context overlap) is the negative control: it shows seams.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import workloads
from bench.common import Context, figure, log

NAME = "seams"

SCHEMES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "crop-fp32": ("crop", "fp32", {"blend": "crop"}),
    "crop-bf16": ("crop", "bf16", {"blend": "crop"}),
    "ramp-fp32": ("ramp", "fp32", {"blend": "ramp"}),
    "no-overlap-fp32": ("no-overlap", "fp32", {"blend": "crop", "margin": 0}),
}


def compare(
    ctx: Context, model_path: Path, dsm: Path, precision: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """Tiled versus whole-image logits for one scheme."""
    from engine.config.base import from_dict
    from engine.features.inputs import transform_for
    from engine.inference.command import plan_for
    from engine.inference.config import InferConfig
    from engine.inference.device import choose_device
    from engine.inference.predictor import Predictor, select_thresholds
    from engine.inference.stream import predict_bands, predict_whole
    from engine.io.raster import RasterReader
    from engine.models.modelfile import load_model

    config = from_dict(
        InferConfig,
        {
            "dsm": str(dsm),
            "model": str(model_path),
            "output": str(ctx.work / "out" / "unused.tif"),
            "precision": precision,
            "device": "cpu",
            "tile_size": ctx.settings.tile,
            **extra,
        },
    )
    model, desc = load_model(model_path)
    _, fed, channels = select_thresholds(None, desc.thresholds, desc.conditioned)
    choice = choose_device("cpu", precision)
    predictor = Predictor(model, fed, choice, channels)
    with RasterReader(dsm, "DSM") as reader:
        info = reader.info
        plan = plan_for(config, info, int(model.depth))
        transform = transform_for(desc, info.pixel_size)
        transform.prepare(reader.read_window, info.height, info.width)
        t0 = time.perf_counter()
        bands = list(predict_bands(reader.read_window, plan, transform, predictor))
        t_tiled = time.perf_counter() - t0
        tiled = np.concatenate([b[2] for b in bands], axis=1)
        valid = np.concatenate([b[3] for b in bands], axis=0)
        values, ok = reader.read()
        h = transform.halo
        x = transform.window(
            np.pad(values, h, constant_values=np.nan), np.pad(ok, h, constant_values=False), 0, 0
        )
    t0 = time.perf_counter()
    whole = predict_whole(x, predictor, plan.lead, plan.multiple)
    t_whole = time.perf_counter() - t0
    diff = np.abs(tiled - whole)[:, valid]
    same = ((tiled > 0) == (whole > 0))[:, valid]
    spread = float(np.percentile(whole[:, valid], 99) - np.percentile(whole[:, valid], 1))
    return {
        "gap_pct_whole": 100.0 * float((whole > 0)[:, valid].mean()),
        "agreement_pct": 100.0 * float(same.mean()),
        "flipped_px": int((~same).sum()),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(diff.max()) / spread if spread > 0 else float("nan"),
        "precision": choice.precision,
        "tile": plan.tile,
        "margin": plan.margin,
        "ramp": plan.ramp,
        "tiles": plan.n_tiles,
        "seconds_tiled": t_tiled,
        "seconds_whole": t_whole,
    }


def run(ctx: Context) -> dict[str, Any]:
    size = ctx.settings.seam_size
    dsm = workloads.dsm(ctx.work, size, ctx.settings.base_size)
    model_path, kind = workloads.model_file(ctx.work)
    figures = []
    for key in ctx.settings.seam_schemes:
        scheme, precision, extra = SCHEMES[key]
        log(f"seams: {scheme} ({precision}) on {size}^2 px")
        r = compare(ctx, model_path, dsm, precision, extra)
        label = f"{scheme}.{r['precision']}.{size}"
        common = {
            "size": size,
            "scheme": scheme,
            "precision": r["precision"],
            "tile": r["tile"],
            "margin": r["margin"],
            "ramp": r["ramp"],
            "tiles": r["tiles"],
        }
        cmd = ctx.bench_command(NAME)
        figures.append(
            figure(
                f"{label}.mask_agreement",
                "%",
                r["agreement_pct"],
                command=cmd,
                flipped_px=r["flipped_px"],
                gap_pct_whole=round(r["gap_pct_whole"], 3),
                **common,
            )
        )
        figures.append(
            figure(
                f"{label}.max_abs_logit_diff",
                "logit",
                r["max_abs_diff"],
                better="lower",
                command=cmd,
                **common,
            )
        )
        figures.append(
            figure(
                f"{label}.max_rel_logit_diff",
                "of p1-p99 spread",
                r["max_rel_diff"],
                better="lower",
                command=cmd,
                **common,
            )
        )
    notes = [f"model: {kind}; tiled = engine streaming path, whole = one padded forward pass"]
    if "fresh" in kind:
        notes.append(
            "untrained weights: masks say little (see gap_pct_whole in results.json); the logit "
            "differences are the meaningful figures. Re-run with a trained default model."
        )
    return {"figures": figures, "targets": [], "notes": notes}
