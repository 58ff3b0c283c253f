"""Canopy height error sums and metrics on seeded rasters with known errors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.heights import HeightErrors, class_names, height_errors

EDGES = (2.0, 5.0, 10.0, 15.0, 20.0)


def reference(seed: int = 0, shape: tuple[int, int] = (60, 50)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 30.0, shape).astype(np.float32)


def by_class(e: HeightErrors) -> dict[str, dict[str, float | None]]:
    return {c["class_m"]: c for c in e.metrics()["by_class"]}


def test_class_names() -> None:
    assert class_names(EDGES) == ["< 2", "2-5", "5-10", "10-15", "15-20", ">= 20"]


def test_one_metre_too_high_in_one_class() -> None:
    ref = reference()
    in_class = (ref >= 5) & (ref < 10)
    pred = np.where(in_class, ref + 1.0, ref).astype(np.float32)
    e = height_errors(pred, ref, np.ones(ref.shape, bool), EDGES)
    classes = by_class(e)
    assert classes["5-10"]["pixels"] == in_class.sum()
    assert classes["5-10"]["mae"] == pytest.approx(1.0, abs=1e-5)
    assert classes["5-10"]["rmse"] == pytest.approx(1.0, abs=1e-5)
    assert classes["5-10"]["bias"] == pytest.approx(1.0, abs=1e-5)
    for name in ("< 2", "2-5", "10-15", "15-20", ">= 20"):
        assert classes[name]["mae"] == 0.0 and classes[name]["bias"] == 0.0
    overall = e.metrics()["overall"]
    share = in_class.sum() / ref.size
    assert overall["pixels"] == ref.size
    assert overall["bias"] == pytest.approx(share, abs=1e-5)
    assert overall["mae"] == pytest.approx(share, abs=1e-5)
    assert overall["rmse"] == pytest.approx(np.sqrt(share), abs=1e-5)


def test_mixed_errors_give_mae_rmse_and_bias_apart() -> None:
    ref = reference(1)
    tall = ref >= 20
    sign = np.where(np.arange(ref.size).reshape(ref.shape) % 2 == 0, 1.0, -1.0)
    pred = np.where(tall, ref - 2.0 + sign, ref).astype(np.float32)  # errors -1 and -3
    c = by_class(height_errors(pred, ref, np.ones(ref.shape, bool), EDGES))[">= 20"]
    err = (pred - ref)[tall].astype(np.float64)
    assert c["bias"] == pytest.approx(err.mean(), abs=1e-5)
    assert c["mae"] == pytest.approx(np.abs(err).mean(), abs=1e-5)
    assert c["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), abs=1e-5)
    assert c["bias"] == pytest.approx(-2.0, abs=0.05) and c["mae"] == pytest.approx(2.0, abs=0.05)


def test_class_edges_and_invalid_pixels() -> None:
    ref = np.array([[-0.5, 1.99, 2.0, 4.99, 5.0, 20.0, 35.0, 7.0]], np.float32)
    pred = ref + np.float32(1)
    pred[0, 7] = np.nan  # no prediction there
    valid = np.ones(ref.shape, bool)
    valid[0, 6] = False  # no reference there
    e = height_errors(pred, ref, valid, EDGES)
    assert e.n.tolist() == [2, 2, 1, 0, 0, 1]


def test_windows_add_up_to_the_whole() -> None:
    ref = reference(2)
    rng = np.random.default_rng(9)
    pred = (ref + rng.normal(0.5, 2.0, ref.shape)).astype(np.float32)
    valid = rng.random(ref.shape) > 0.1
    whole = height_errors(pred, ref, valid, EDGES)
    strips = HeightErrors.empty(EDGES)
    for r0 in range(0, ref.shape[0], 7):
        sl = np.s_[r0 : r0 + 7]
        strips = strips + height_errors(pred[sl], ref[sl], valid[sl], EDGES)
    assert np.array_equal(whole.n, strips.n)
    for a, b in ((whole.sum_abs, strips.sum_abs), (whole.sum_sq, strips.sum_sq)):
        assert np.allclose(a, b, rtol=1e-12)
    assert whole.metrics()["overall"]["bias"] == pytest.approx(0.5, abs=0.1)


def test_empty_class_is_undefined_and_classes_must_match() -> None:
    ref = np.full((4, 4), 3.0, np.float32)
    classes = by_class(height_errors(ref, ref, np.ones(ref.shape, bool), EDGES))
    assert classes["< 2"] == {
        "class_m": "< 2",
        "pixels": 0,
        "mae": None,
        "rmse": None,
        "bias": None,
    }
    with pytest.raises(ValueError, match="different height classes"):
        HeightErrors.empty(EDGES) + HeightErrors.empty((5.0,))
