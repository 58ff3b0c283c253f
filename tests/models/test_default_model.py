"""The shipped default model (resources/models/default.safetensors) loads and predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch

from engine.api import run
from engine.config.base import from_dict
from engine.data.config import SynthConfig
from engine.data.labels import gap_masks
from engine.data.synthetic import make_scene, write_scene
from engine.models import load_model, nesting_violation_rate, read_description

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "default.safetensors"


def test_default_model_file_is_small_and_described() -> None:
    assert MODEL.exists(), "resources/models/default.safetensors is shipped (make train-default)"
    assert MODEL.stat().st_size < 5 * 2**20
    desc = read_description(MODEL)
    assert desc.thresholds == [2.0, 5.0, 10.0, 15.0, 20.0]
    assert desc.pixel_size == 1.0 and desc.output_kind == "independent"
    assert desc.architecture["args"]["head"] == "ground_residual"
    floors = desc.architecture["args"]["head_args"]["openness_floor"]
    assert floors == [0.5, 0.05, 0.0, 0.0, 0.0]  # the LOSO choice, one per threshold
    held_out = desc.metrics["holdout_harv"]
    assert set(held_out) == {"model", "classical", "ref21"}
    for t in ("2", "5", "10", "15", "20"):  # as measured by make train-default
        assert held_out["model"][t]["iou"] > held_out["ref21"][t]["iou"]
        # the guard chosen by leave-one-site-out corrects closed canopy from 10 m up, which
        # costs closed, flat HARV up to 0.0007 IoU (MODEL_CARD.md)
        assert held_out["model"][t]["iou"] >= held_out["classical"][t]["iou"] - 0.002
    model, _ = load_model(MODEL)
    assert sum(p.numel() for p in model.parameters()) > 100_000


def test_default_model_predicts_gaps_of_a_synthetic_scene(tmp_path: Path) -> None:
    cfg = from_dict(SynthConfig, {"output": str(tmp_path / "scene"), "size": 256, "seed": 5})
    scene = make_scene(cfg)
    paths = write_scene(scene, tmp_path / "scene")
    out = tmp_path / "gaps.tif"
    run(
        "infer",
        {"dsm": paths["dsm"], "model": str(MODEL), "output": str(out), "precision": "fp32"},
    )
    with rasterio.open(out) as ds:
        pred = ds.read()
    ref = gap_masks(scene.chm, scene.valid, [2, 5, 10, 15, 20], 1.0, None, None, True)
    assert nesting_violation_rate(torch.from_numpy((pred == 1).astype(np.float32))[None]) == 0.0
    for k, t in enumerate([5, 10, 15]):
        p, r = pred[k] == 1, ref[k] == 1
        iou = (p & r).sum() / max((p | r).sum(), 1)
        assert iou > 0.5, f"IoU at {t} m is {iou:.3f} on the synthetic scene"
