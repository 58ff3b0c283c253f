"""Classical method: streamed == whole image, gaps where the synthetic scene has them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.api import run
from engine.data.config import SynthConfig
from engine.data.synthetic import make_scene
from engine.inference.classical_core import (
    REF21,
    ClassicalMethod,
    gap_masks,
    smoothed_minimum_heights,
)

from .helpers import smooth_dsm

THRESHOLDS = [2.0, 5.0, 10.0]


@pytest.mark.parametrize(
    "method",
    [
        ClassicalMethod(THRESHOLDS, "smoothed_minimum", window_m=5.0, smoothing_m=3.0),
        ClassicalMethod(THRESHOLDS, "adaptive"),
    ],
    ids=["smoothed_minimum", "adaptive"],
)
def test_windowed_equals_whole_image_bit_for_bit(method: ClassicalMethod) -> None:
    rng = np.random.default_rng(0)
    dsm = (rng.random((120, 90)) * 30).astype(np.float32)
    valid = rng.random((120, 90)) > 0.05
    ref = method.heights(dsm, valid, 0.5)
    halo = method.halo_px(0.5)
    pad_v = np.pad(np.where(valid, dsm, np.nan), halo, constant_values=np.nan)
    pad_ok = np.pad(valid, halo, constant_values=False)
    for a in range(0, 120, 17):
        b = min(a + 17, 120)
        win = np.s_[a : b + 2 * halo, :]
        got = method.window(pad_v[win], pad_ok[win], a, 0, 0.5)
        assert np.array_equal(got, ref[:, a:b], equal_nan=True)


def test_ref21_is_the_two_line_filter() -> None:
    """ref21 = uniform(minimum(dsm, 21), 21) away from the raster edge (scipy, 1 m pixels)."""
    from scipy import ndimage

    dsm = smooth_dsm(120, 110, 3)
    ground = ndimage.uniform_filter(ndimage.minimum_filter(dsm.astype(np.float64), 21), 21)
    ours = ClassicalMethod(THRESHOLDS, **REF21).heights(dsm, np.isfinite(dsm), 1.0)[0]
    inner = np.s_[21:-21, 21:-21]
    assert np.allclose(ours[inner], (dsm - ground)[inner], atol=1e-3)


def test_command_streams_like_whole_image(tmp_path: Path, dsm_file: Callable[..., Path]) -> None:
    dsm = smooth_dsm(130, 70, 4)
    dsm[50:60, 10:20] = np.nan
    path = dsm_file("dsm.tif", dsm)
    res = run(
        "classical",
        {
            "dsm": str(path),
            "output": str(tmp_path / "c.tif"),
            "heights": str(tmp_path / "h.tif"),
            "method": "smoothed_minimum",
            "window_m": 9,
            "smoothing_m": 5,
            "band_rows": 16,
            "thresholds": [1, 3],
        },
    )
    assert res["rasters"][0]["bands_written"] == 9
    ref = smoothed_minimum_heights(dsm, np.isfinite(dsm), 1.0, 9, 5)
    with rasterio.open(tmp_path / "h.tif") as h, rasterio.open(tmp_path / "c.tif") as c:
        assert np.array_equal(h.read(1), ref, equal_nan=True)
        assert np.array_equal(c.read(), gap_masks(ref, [1.0, 3.0]))
        assert c.descriptions == ("gap <= 1 m", "gap <= 3 m") and c.nodata == 255


def test_finds_synthetic_gaps() -> None:
    scene = make_scene(
        SynthConfig(
            output=Path("unused"),
            size=256,
            pixel_size=1.0,
            seed=2,
            gaps=6,
            gap_radius_min_m=6,
            gap_radius_max_m=12,
            regrowth_max_m=1.0,
            relief_m=5.0,
        )
    )
    h = ClassicalMethod([5.0]).heights(scene.dsm, scene.valid, 1.0)[0]
    found = h <= 5.0
    truth = scene.chm <= 5.0
    inner = np.zeros_like(truth)
    for g in scene.gaps:
        inner |= g.mask(truth.shape, 1.0, grow_m=-2.0)
    # the cores of the synthetic gaps are found, and most found pixels are true gaps
    assert found[inner].mean() > 0.9
    assert truth[found].mean() > 0.7


def test_adaptive_command_writes_one_height_band_per_threshold(
    tmp_path: Path, dsm_file: Callable[..., Path]
) -> None:
    dsm = smooth_dsm(150, 140, 5)
    path = dsm_file("dsm.tif", dsm)
    res = run(
        "classical",
        {
            "dsm": str(path),
            "output": str(tmp_path / "c.tif"),
            "heights": str(tmp_path / "h.tif"),
            "band_rows": 32,
            "thresholds": THRESHOLDS,
        },
    )
    assert (res["output"], res["heights"], res["polygons"]) == (
        str(tmp_path / "c.tif"),
        str(tmp_path / "h.tif"),
        None,
    )
    assert res["rasters"][0]["dsm"] == str(path) and "probabilities" not in res["rasters"][0]
    ref = ClassicalMethod(THRESHOLDS).heights(dsm, np.isfinite(dsm), 1.0)
    with rasterio.open(tmp_path / "h.tif") as h, rasterio.open(tmp_path / "c.tif") as c:
        assert h.count == 3 and "gaps <= 5 m" in h.descriptions[1]
        assert np.array_equal(h.read(), ref, equal_nan=True)
        assert np.array_equal(c.read(), gap_masks(ref, THRESHOLDS))


def test_per_threshold_heights_give_nested_masks() -> None:
    """A gap at 2 m (its own ground) that a larger window puts above 5 m stays a gap at 5 m;
    nodata stays nodata; thresholds given in any order nest by height."""
    import numpy as np

    from engine.inference.classical_core import gap_masks

    heights = np.array([[[1.5, 3.0, np.nan]], [[6.0, 4.0, np.nan]]], dtype=np.float32)
    masks = gap_masks(heights, [2.0, 5.0])
    assert masks.tolist() == [[[1, 0, 255]], [[1, 1, 255]]]
    masks = gap_masks(heights[::-1].copy(), [5.0, 2.0])  # same bands, thresholds descending
    assert masks.tolist() == [[[1, 1, 255]], [[1, 0, 255]]]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_blocks_computed_ahead_come_in_order_and_stop_with_the_consumer(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Blocks are computed two at a time in threads: they must still come left to right, band
    after band, equal to the whole image, and a consumer that stops early (cancel, error) must
    leave no worker running."""
    import threading

    from engine.events import NullReporter
    from engine.inference import classical
    from engine.inference.config import ClassicalConfig

    monkeypatch.setattr(classical, "BLOCK_PX", 3000)
    monkeypatch.setattr(classical, "MIN_BLOCK_COLS", 8)
    dsm = smooth_dsm(60, 90, 5)
    valid = np.isfinite(dsm)
    config = ClassicalConfig(
        dsm=Path("in.tif"), output=Path("out.tif"), thresholds=[2.0, 5.0], workers=workers
    )
    ref = config.calculation().heights(dsm, valid, 1.0)
    pad = config.calculation().halo_px(1.0)
    padded = np.pad(dsm, pad, constant_values=np.nan)

    def read(r: int, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        win = padded[r + pad : r + pad + h, c + pad : c + pad + w]
        return win.copy(), np.isfinite(win)

    bands = [(a, min(a + 20, 60)) for a in range(0, 60, 20)]

    def blocks() -> object:
        return classical.classical_bands(read, 60, 90, 1.0, config, bands, 0, 3, NullReporter())

    order = []
    for row, col, _masks, (heights,) in blocks():  # type: ignore[attr-defined]
        order.append((row, col))
        got = ref[:, row : row + heights.shape[1], col : col + heights.shape[2]]
        assert np.array_equal(heights, got, equal_nan=True)
    assert order == sorted(order) and len({c for _, c in order}) > 1  # several blocks a band
    before = threading.active_count()
    stream = blocks()
    next(stream)  # type: ignore[call-overload]
    assert threading.active_count() > before  # workers are running ahead
    stream.close()  # type: ignore[attr-defined]
    assert threading.active_count() == before
