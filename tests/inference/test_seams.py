"""No seams: tiled streaming equals one whole-image pass (both blending schemes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import NORM, smooth_dsm, tiny_unet

from engine.api import run
from engine.data.normalise import NormalisationConfig, low_surface_from_array, normalise_window
from engine.features.inputs import LowSurfaceTransform
from engine.inference.device import choose_device
from engine.inference.predictor import Predictor
from engine.inference.stream import predict_bands, predict_whole
from engine.inference.tiling import TilePlan, auto_margin


def _reader(dsm: np.ndarray, valid: np.ndarray) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    h, w = dsm.shape

    def read(r: int, c: int, hh: int, ww: int) -> tuple[np.ndarray, np.ndarray]:
        v = np.full((hh, ww), np.nan, np.float32)
        ok = np.zeros((hh, ww), bool)
        r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + hh, h), min(c + ww, w)
        if r1 > r0 and c1 > c0:
            v[r0 - r : r1 - r, c0 - c : c1 - c] = dsm[r0:r1, c0:c1]
            ok[r0 - r : r1 - r, c0 - c : c1 - c] = valid[r0:r1, c0:c1]
        return v, ok

    return read


@pytest.mark.parametrize(("blend", "ramp"), [("crop", 0), ("ramp", 8)])
def test_tiled_equals_whole_image(blend: str, ramp: int) -> None:
    h, w = 150, 170
    dsm = smooth_dsm(h, w, seed=3)
    valid = np.ones((h, w), bool)
    valid[:6, :9] = False
    norm = NormalisationConfig(**NORM)
    surface = low_surface_from_array(dsm, valid, 1.0, norm)
    pred = Predictor(tiny_unet(), [2.0, 5.0, 10.0], choose_device("cpu", "fp32"))
    plan = TilePlan(h, w, tile=64, margin=auto_margin(3, 64), ramp=ramp, multiple=8)
    assert plan.n_tiles > 4
    x = normalise_window(dsm, valid, surface, 0, 0, norm)
    whole = predict_whole(x, pred, plan.lead, 8)
    tiled = np.full_like(whole, np.nan)
    seen_valid = np.zeros((h, w), bool)
    for start, stop, logits, v in predict_bands(
        _reader(dsm, valid), plan, _transform(norm, surface), pred, 2
    ):
        tiled[:, start:stop] = logits
        seen_valid[start:stop] = v
    assert np.isfinite(tiled).all()
    assert np.array_equal(seen_valid, valid)
    spread = float(np.ptp(whole))
    assert np.abs(tiled - whole).max() <= 1e-4 * spread
    assert ((tiled > 0) == (whole > 0)).mean() >= 0.999


@pytest.mark.parametrize("blend", ["crop", "ramp"])
def test_command_output_equals_whole_image(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], blend: str
) -> None:
    h, w = 120, 140
    dsm = smooth_dsm(h, w, seed=5)
    path = dsm_file("dsm.tif", dsm)
    out = tmp_path / "gaps.tif"
    run(
        "infer",
        {
            "dsm": str(path),
            "model": str(unet_file),
            "output": str(out),
            "tile_size": 64,
            "blend": blend,
            "overlap": 8,
            "precision": "fp32",
        },
    )
    norm = NormalisationConfig(**NORM)
    valid = np.ones((h, w), bool)
    x = normalise_window(dsm, valid, low_surface_from_array(dsm, valid, 1.0, norm), 0, 0, norm)
    pred = Predictor(tiny_unet(), [2.0, 5.0, 10.0], choose_device("cpu", "fp32"))
    lead = auto_margin(3, 64) + (0 if blend == "crop" else 8)
    whole = (predict_whole(x, pred, lead, 8) > 0).astype(np.uint8)
    with rasterio.open(out) as ds:
        tiled = ds.read()
    assert (tiled == whole).mean() >= 0.999


def _transform(norm: NormalisationConfig, surface: object) -> LowSurfaceTransform:
    """The legacy input transform with its low surface already computed."""
    transform = LowSurfaceTransform(norm, 1.0)
    transform.surface = surface  # type: ignore[assignment]
    return transform
