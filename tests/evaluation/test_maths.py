"""Array-level evaluation maths on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.confusion import (
    ConfusionCounts,
    confusion_counts,
    pixel_metrics,
    summed_counts,
)
from engine.evaluation.gapfraction import CellStats, cell_fractions, gap_fraction_stats
from engine.evaluation.nesting import nesting_counts
from engine.evaluation.objects import (
    label_gaps,
    match_objects,
    object_counts,
    size_class,
    size_class_names,
)
from engine.evaluation.powerlaw import fit_power_law

U8 = np.uint8


def test_pixel_metrics_hand_computed() -> None:
    pred = np.array([[1, 1, 0], [0, 1, 0]], U8)
    ref = np.array([[1, 0, 0], [1, 1, 0]], U8)
    c = confusion_counts(pred, ref)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 2)
    m = pixel_metrics(c)
    assert m["iou"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # po = 4/6, pe = (3*3 + 3*3) / 36 = 0.5, kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert m["kappa"] == pytest.approx(1 / 3)
    assert m["notes"] == []


def test_nodata_pixels_are_ignored() -> None:
    pred = np.array([[1, 255, 0, 1]], U8)
    ref = np.array([[1, 1, 255, 0]], U8)
    c = confusion_counts(pred, ref)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 0, 0)


def test_summed_counts_differ_from_per_tile_average() -> None:
    # Tile A: one gap pixel found exactly (IoU 1). Tile B: 1 true gap, 9 false alarms (IoU 0.1).
    a_pred = np.zeros((4, 4), U8)
    a_ref = np.zeros((4, 4), U8)
    a_pred[0, 0] = a_ref[0, 0] = 1
    b_pred = np.zeros((4, 4), U8)
    b_ref = np.zeros((4, 4), U8)
    b_pred.flat[:10] = 1
    b_ref[0, 0] = 1
    tiles = [(a_pred, a_ref), (b_pred, b_ref)]
    per_tile = np.mean([pixel_metrics(confusion_counts(p, r))["iou"] for p, r in tiles])
    summed = pixel_metrics(summed_counts(tiles))["iou"]
    assert per_tile == pytest.approx(0.55)
    assert summed == pytest.approx(2 / 11)
    # Summing windows equals counting the whole mosaic at once.
    whole = confusion_counts(np.hstack([a_pred, b_pred]), np.hstack([a_ref, b_ref]))
    assert whole == summed_counts(tiles)


def test_zero_denominators_give_none_and_notes() -> None:
    zeros = np.zeros((3, 3), U8)
    m = pixel_metrics(confusion_counts(zeros, zeros))
    assert m["iou"] is None and m["f1"] is None and m["precision"] is None and m["recall"] is None
    assert m["kappa"] is None and m["accuracy"] == 1.0
    assert any("IoU" in n for n in m["notes"]) and any("kappa" in n for n in m["notes"])
    empty = pixel_metrics(ConfusionCounts())
    assert all(empty[k] is None for k in ("iou", "f1", "precision", "recall", "accuracy", "kappa"))
    assert "no valid pixel" in empty["notes"][0]


def _square(mask: np.ndarray, r: int, c: int, h: int, w: int) -> None:
    mask[r : r + h, c : c + w] = 1


def test_object_matching_one_to_one() -> None:
    ref = np.zeros((20, 30), U8)
    pred = np.zeros((20, 30), U8)
    _square(ref, 1, 1, 4, 4)  # matched exactly (IoU 1)
    _square(pred, 1, 1, 4, 4)
    _square(ref, 1, 10, 4, 4)  # shifted by one column: 12 / 20 = 0.6 -> matched
    _square(pred, 1, 11, 4, 4)
    _square(pred, 10, 1, 2, 2)  # false object
    _square(ref, 10, 10, 2, 2)  # two reference blobs under one long prediction: 4 / 10 = 0.4 each
    _square(ref, 10, 13, 2, 2)
    _square(pred, 10, 10, 2, 5)
    res = object_counts(pred, ref, pixel_area=1.0)
    m = res.counts.metrics()["all"]
    assert (m["n_pred"], m["n_ref"], m["matched"]) == (4, 4, 2)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert sorted(round(v, 3) for _, _, v in res.matches) == [0.6, 1.0]
    # each object used at most once
    assert len({p for p, _, _ in res.matches}) == len({r for _, r, _ in res.matches}) == 2


def test_object_matching_iou_boundary() -> None:
    ref = np.zeros((10, 20), U8)
    pred = np.zeros((10, 20), U8)
    _square(ref, 0, 0, 2, 4)  # 8 px; prediction covers half: IoU = 4 / 8 = 0.5 -> match
    _square(pred, 0, 0, 2, 2)
    _square(ref, 5, 0, 3, 3)  # 9 px; prediction 4 px inside: IoU = 4 / 9 < 0.5 -> no match
    _square(pred, 5, 0, 2, 2)
    pl, n_p = label_gaps(pred == 1)
    rl, n_r = label_gaps(ref == 1)
    matches = match_objects(pl, n_p, rl, n_r, min_iou=0.5)
    assert [round(v, 6) for _, _, v in matches] == [0.5]
    assert match_objects(pl, n_p, rl, n_r, min_iou=0.51) == []


def test_eight_connectivity_and_size_classes() -> None:
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # diagonal chain: one 8-connected object
    mask[4, 4] = True
    _, n = label_gaps(mask)
    assert n == 2
    assert size_class_names([10, 100, 1000]) == ["<10", "10-100", "100-1000", ">=1000"]
    assert size_class(np.array([9.9, 10.0, 99, 100, 5000]), [10, 100, 1000]).tolist() == [
        0,
        1,
        1,
        2,
        3,
    ]


def test_objects_by_size_class_and_prediction_area_filter() -> None:
    ref = np.zeros((40, 40), U8)
    pred = np.zeros((40, 40), U8)
    _square(ref, 0, 0, 2, 2)  # 4 px * 4 m² = 16 m² -> class 10-100
    _square(pred, 0, 0, 2, 2)
    _square(ref, 10, 10, 6, 6)  # 36 px * 4 = 144 m² -> class 100-1000
    _square(pred, 10, 10, 6, 6)
    _square(pred, 30, 30, 1, 1)  # 4 m² speckle
    res = object_counts(pred, ref, pixel_area=4.0)
    by = {row["size_class_m2"]: row for row in res.counts.metrics()["by_size"]}
    assert (
        by["<10"]["n_pred"] == 1 and by["<10"]["precision"] == 0.0 and by["<10"]["recall"] is None
    )
    assert by["10-100"]["matched_ref"] == 1 and by["100-1000"]["f1"] == 1.0
    filtered = object_counts(pred, ref, pixel_area=4.0, pred_min_area=10.0)
    assert filtered.counts.metrics()["all"]["precision"] == 1.0
    total = res.counts + filtered.counts
    assert total.metrics()["all"]["n_pred"] == 5


@pytest.mark.parametrize("alpha", [1.8, 2.5])
def test_continuous_lambda_mle_recovers_exponent(alpha: float) -> None:
    rng = np.random.default_rng(1)
    xmin = 10.0
    x = xmin * (1 - rng.random(20000)) ** (-1 / (alpha - 1))  # inverse CDF of p(x) ∝ x^-alpha
    fit = fit_power_law(x, method="continuous")
    assert fit.xmin == pytest.approx(xmin, rel=1e-3)
    assert fit.lambda_ == pytest.approx(alpha, abs=0.05)
    assert fit.stderr == pytest.approx((fit.lambda_ - 1) / np.sqrt(20000))
    assert fit_power_law(x, xmin=50.0).lambda_ == pytest.approx(alpha, abs=0.08)


def test_discrete_lambda_mle_recovers_zeta_exponent() -> None:
    from scipy import stats

    x = stats.zipf(2.2).rvs(size=20000, random_state=np.random.default_rng(2))
    fit = fit_power_law(x, xmin=1, method="discrete")
    assert fit.lambda_ == pytest.approx(2.2, abs=0.03)
    assert fit.stderr is not None and 0 < fit.stderr < 0.05


def test_lambda_undefined_cases() -> None:
    assert fit_power_law([]).lambda_ is None
    assert fit_power_law([5.0]).lambda_ is None
    fit = fit_power_law([4.0, 4.0, 4.0])
    assert fit.lambda_ is None and "same size" in fit.note


def test_gap_fraction_identical_maps_r2_is_one() -> None:
    rng = np.random.default_rng(3)
    ref = (rng.random((40, 40)) < np.linspace(0, 1, 40)[None, :]).astype(U8)
    stats = gap_fraction_stats(ref, ref.copy(), cell_px=10)
    m = stats.metrics()
    assert m["cells"] == 16 and m["r2"] == 1.0 and m["rmse"] == 0.0 and m["bias"] == 0.0


def test_gap_fraction_bias_rmse_and_partial_cells() -> None:
    ref = np.zeros((4, 4), U8)
    ref[:2, :2] = 1  # cell fractions (2x2 cells): 1, 0, 0, 0
    pred = ref.copy()
    pred[2:, 2:] = 1  # prediction adds a full cell: 1, 0, 0, 1
    m = gap_fraction_stats(pred, ref, cell_px=2).metrics()
    assert m["bias"] == pytest.approx(0.25) and m["rmse"] == pytest.approx(0.5)
    # ss_tot = 1 - 1/4 = 0.75, ss_res = 1 -> R² = 1 - 1/0.75
    assert m["r2"] == pytest.approx(1 - 1 / 0.75)
    # A cell with fewer than half of its pixels valid is skipped; sums add up over windows.
    pred[0:2, 0:2] = 255
    pred[0, 0] = 1
    p, _ = cell_fractions(pred, ref, 2)
    assert p.size == 3
    a = gap_fraction_stats(pred[:2], ref[:2], 2) + gap_fraction_stats(pred[2:], ref[2:], 2)
    assert a == gap_fraction_stats(pred, ref, 2)
    assert CellStats().metrics()["r2"] is None


def test_nesting_violation_rate() -> None:
    # thresholds given out of order on purpose: bands are sorted by threshold
    t = [5.0, 2.0, 10.0]
    low = np.array([[1, 1, 0, 0]], U8)  # 2 m
    mid = np.array([[1, 0, 1, 0]], U8)  # 5 m: pixel 1 violates (gap at 2 m, not at 5 m)
    high = np.array([[1, 1, 0, 255]], U8)  # 10 m: pixel 2 violates; pixel 3 invalid
    n = nesting_counts(np.stack([mid, low, high]), t)
    m = n.metrics()
    assert n.thresholds == (2.0, 5.0, 10.0)
    assert [p["violations"] for p in m["pairs"]] == [1, 1]
    assert [p["rate"] for p in m["pairs"]] == [0.5, 0.5]
    assert m["violating_pixels"] == 2 and m["valid_pixels"] == 3
    assert m["rate"] == pytest.approx(2 / 3)
    nested = np.stack([low, low, np.ones_like(low)])
    assert nesting_counts(nested, [2.0, 5.0, 10.0]).metrics()["rate"] == 0.0


def test_error_classes_and_block_downsampling() -> None:
    from engine.evaluation.preview import FN, FP, TN, TP, block_mode, error_classes

    pred = np.array([[1, 1, 0, 0, 255]], U8)
    ref = np.array([[1, 0, 1, 0, 0]], U8)
    assert error_classes(pred, ref).tolist() == [[TP, FP, FN, TN, 255]]
    classes = np.full((2000, 1000), TN, U8)
    classes[:3, :3] = TP  # one 3x3 block entirely TP
    classes[3:6, 3:5] = FP  # 6 of 9 pixels FP -> FP wins
    classes[-2:, :] = 255  # the last block row holds 2 nodata rows + padding only
    small = block_mode(classes, max_px=800)
    assert small.shape == (667, 334)
    assert small[0, 0] == TP and small[1, 1] == FP and small[2, 2] == TN
    assert small[-1, 0] == 255
