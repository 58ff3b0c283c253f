"""Seams: tiled streaming against one whole-image pass, and chunked against unchunked blending.

* A model whose receptive field is known (:class:`~tests.inference.helpers.WindowMinModel`,
  radius 12 px, depth 3, so the default margin is 16 px): a margin that covers the radius gives
  the whole-image result bit for bit, a smaller one does not.
* A random U-Net (receptive-field radius 46 px, wider than its 16 px margin): equal within a
  stated tolerance only.
* Ramp blending with tiles that disagree on their overlaps: column chunks give the result of
  whole tile rows, and both equal a plain full-raster weighted sum, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.api import run
from engine.data.config import NormalisationConfig
from engine.data.normalise import low_surface_from_array
from engine.data.tiling import TilePlan, auto_margin
from engine.features.inputs import LowSurfaceTransform
from engine.inference.device import choose_device
from engine.inference.predictor import Predictor
from engine.inference.stream import predict_bands, predict_whole, read_strip
from engine.models.base import GapModel

from .helpers import NORM, THRESHOLDS, save, smooth_dsm, tiny_unet, window_min

RADIUS = 12  # receptive-field radius of window_min(): 25 x 25 px


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


def _scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray, LowSurfaceTransform]:
    """A DSM, its valid mask and the model input transform with the low surface computed."""
    dsm = smooth_dsm(h, w, seed=seed)
    valid = np.ones((h, w), bool)
    valid[:6, :9] = False
    return dsm, valid, _transform(dsm, valid)


def _transform(dsm: np.ndarray, valid: np.ndarray) -> LowSurfaceTransform:
    norm = NormalisationConfig(**NORM)
    transform = LowSurfaceTransform(norm, 1.0)
    transform.surface = low_surface_from_array(dsm, valid, 1.0, norm)
    return transform


def _tiled_and_whole(
    model: GapModel, plan: TilePlan, seed: int = 3, chunk_px: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[T, H, W]`` of the streaming path and of one padded whole-image pass."""
    dsm, valid, transform = _scene(plan.height, plan.width, seed)
    pred = Predictor(model, THRESHOLDS, choose_device("cpu", "fp32"))
    whole = predict_whole(transform.whole(dsm, valid), pred, plan.lead, plan.multiple)
    tiled = np.full_like(whole, np.nan)
    read = _reader(dsm, valid)
    for start, stop, logits, _ in predict_bands(
        read, plan, transform, pred, 2, None, None, 2, chunk_px
    ):
        tiled[:, start:stop] = logits
    assert np.isfinite(tiled).all()
    return tiled, whole


@pytest.mark.parametrize(
    ("margin", "exact"), [(16, True), (RADIUS, True), (RADIUS - 1, False), (4, False)]
)
def test_margin_covering_the_receptive_field_is_exact(margin: int, exact: bool) -> None:
    plan = TilePlan(150, 170, tile=64, margin=margin, multiple=8)
    assert plan.n_tiles > 4
    tiled, whole = _tiled_and_whole(window_min(RADIUS), plan)
    if exact:
        assert np.array_equal(tiled, whole)  # bit for bit
    else:  # tile edges cut the 25 px window: wrong minima near every seam
        assert np.abs(tiled - whole).max() > 1.0
        assert not np.array_equal(tiled > 0, whole > 0)


def test_ramp_blend_with_covering_margin_equals_whole_image() -> None:
    plan = TilePlan(150, 170, tile=64, margin=16, ramp=8, multiple=8)
    tiled, whole = _tiled_and_whole(window_min(RADIUS), plan)
    # every tile gives the same value; the weighted mean of equal values rounds within 1 ulp
    assert np.abs(tiled - whole).max() <= 1e-6 * np.abs(whole).max()
    assert np.array_equal(tiled > 0, whole > 0)


def test_default_margin_covers_the_test_model() -> None:
    assert auto_margin(3, 64) == 16 >= RADIUS
    assert auto_margin(3, 512) == 16 and auto_margin(4, 512) == 32  # the default model: depth 4


@pytest.mark.parametrize(("blend", "ramp"), [("crop", 0), ("ramp", 8)])
def test_unet_tiled_close_to_whole_image(blend: str, ramp: int) -> None:
    """A U-Net's receptive field (46 px radius here) is wider than the 16 px margin: the far
    context weighs little, so tiles agree with the whole image within a tolerance, not exactly."""
    plan = TilePlan(150, 170, tile=64, margin=auto_margin(3, 64), ramp=ramp, multiple=8)
    tiled, whole = _tiled_and_whole(tiny_unet(), plan)
    spread = float(np.ptp(whole))
    assert np.abs(tiled - whole).max() <= 1e-4 * spread
    assert ((tiled > 0) == (whole > 0)).mean() >= 0.999


def _infer(
    tmp_path: Path, model_file: Path, dsm: np.ndarray, write: Callable[..., Path], **extra: object
) -> tuple[np.ndarray, np.ndarray]:
    """``engine infer`` (torch fp32) on ``dsm``: (masks, probabilities)."""
    path = write("dsm.tif", dsm)
    out, prob = tmp_path / "gaps.tif", tmp_path / "prob.tif"
    for p in (out, prob):
        p.unlink(missing_ok=True)
    params = {"dsm": str(path), "model": str(model_file), "output": str(out)}
    params.update(probabilities=str(prob), tile_size=64, precision="fp32", runtime="torch")
    run("infer", {**params, **extra})
    with rasterio.open(out) as ds, rasterio.open(prob) as ps:
        return ds.read(), ps.read()


def _whole_masks(model: GapModel, dsm: np.ndarray, lead: int) -> tuple[np.ndarray, np.ndarray]:
    valid = np.ones(dsm.shape, bool)
    x = _transform(dsm, valid).whole(dsm, valid)
    logits = predict_whole(x, Predictor(model, THRESHOLDS, choose_device("cpu", "fp32")), lead, 8)
    return (logits > 0).astype(np.uint8), 1 / (1 + np.exp(-logits.astype(np.float64)))


@pytest.mark.parametrize("blend", ["crop", "ramp"])
def test_command_with_default_margin_equals_whole_image(
    tmp_path: Path, dsm_file: Callable[..., Path], blend: str
) -> None:
    """``engine infer`` with its default margin: masks identical to the whole-image pass."""
    model_file = save(window_min(RADIUS), tmp_path / "window_min.safetensors")
    dsm = smooth_dsm(120, 140, seed=5)
    masks, prob = _infer(tmp_path, model_file, dsm, dsm_file, blend=blend, overlap=8)
    lead = auto_margin(3, 64) + (0 if blend == "crop" else 8)
    whole, whole_prob = _whole_masks(window_min(RADIUS), dsm, lead)
    assert np.array_equal(masks, whole)
    assert np.abs(prob - whole_prob).max() < 1e-6


def test_command_with_too_small_margin_has_seams(
    tmp_path: Path, dsm_file: Callable[..., Path]
) -> None:
    model_file = save(window_min(RADIUS), tmp_path / "window_min.safetensors")
    dsm = smooth_dsm(120, 140, seed=5)
    masks, _ = _infer(tmp_path, model_file, dsm, dsm_file, margin=4)
    whole, _ = _whole_masks(window_min(RADIUS), dsm, 4)
    assert (masks != whole).sum() > 50


def _skewed(tiles: np.ndarray) -> np.ndarray:
    """A 'model' whose tiles disagree on their overlaps: the output depends on the position
    inside the tile (``[B, 1, t, t] -> [B, 3, t, t]``)."""
    t = tiles.shape[-1]
    ramp = np.linspace(-1.0, 1.0, t, dtype=np.float32)
    base = tiles + ramp[None, None, :, None] + np.float32(0.5) * ramp[None, None, None, :]
    return np.concatenate([base, 2 * base, -base], axis=1)


def _plain_blend(
    read: Callable[..., tuple[np.ndarray, np.ndarray]],
    plan: TilePlan,
    transform: LowSurfaceTransform,
) -> np.ndarray:
    """Reference: every tile's weighted logits summed into one full-raster accumulator, tile
    rows top to bottom, tiles left to right (the order the stitcher promises), then divided."""
    acc = np.zeros((3, plan.height, plan.width), np.float32)
    wsum = np.zeros((plan.height, plan.width), np.float32)
    w1 = plan.weights
    for k in range(plan.n_rows):
        tiles = read_strip(read, plan, k, transform).tiles
        oy = plan.row_origin(k)
        r0, r1 = max(oy, 0), min(oy + plan.tile, plan.height)
        for j, logits in enumerate(_skewed(tiles)):
            ox = plan.col_origin(j)
            c0, c1 = max(ox, 0), min(ox + plan.tile, plan.width)
            weight = w1[r0 - oy : r1 - oy][:, None] * w1[c0 - ox : c1 - ox][None, :]
            acc[:, r0:r1, c0:c1] += logits[:, r0 - oy : r1 - oy, c0 - ox : c1 - ox] * weight
            wsum[r0:r1, c0:c1] += weight
    return np.divide(acc, wsum, out=np.zeros_like(acc), where=wsum > 0)


def test_ramp_blend_chunked_equals_unchunked_bit_for_bit() -> None:
    """Column chunks (column carry) and tile rows (row carry) change nothing, bit for bit."""
    h, w = 150, 300
    dsm, valid, transform = _scene(h, w, seed=7)
    plan = TilePlan(h, w, tile=64, margin=8, ramp=12, multiple=8)
    read = _reader(dsm, valid)

    def bands(chunk_px: int) -> np.ndarray:
        out = np.full((3, h, w), np.nan, np.float32)
        for start, stop, logits, _ in predict_bands(
            read, plan, transform, _skewed, 1, None, None, 2, chunk_px
        ):
            out[:, start:stop] = logits
        return out

    assert len(plan.chunks(64 * 200)) >= 3 and len(plan.chunks(2**30)) == 1
    unchunked = bands(2**30)
    chunked = bands(64 * 200)
    reference = _plain_blend(read, plan, transform)
    assert np.array_equal(unchunked, reference)  # row carry
    assert np.array_equal(chunked, unchunked)  # column carry
    # tiles really disagree where they overlap: a dropped carry would show
    assert np.abs(_skewed(np.zeros((1, 1, 64, 64), np.float32))).max() >= 1.0
