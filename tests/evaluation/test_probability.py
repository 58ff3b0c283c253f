"""Probability metrics from histograms vs brute-force computations on the raw samples."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.probability import (
    ProbabilityCounts,
    iou_curve,
    probability_counts,
    probability_metrics,
)

BINS = 2048


def brute_ap(p: np.ndarray, y: np.ndarray) -> float:
    """Average precision by definition: sum over distinct scores (high to low) of dR x P."""
    total, ap, last_recall = y.sum(), 0.0, 0.0
    for v in np.unique(p)[::-1]:
        sel = p >= v
        tp = np.sum(sel & y)
        recall = tp / total
        ap += (recall - last_recall) * tp / sel.sum()
        last_recall = recall
    return float(ap)


def brute_iou(p: np.ndarray, y: np.ndarray, cut: float) -> float:
    sel = p >= cut
    return float(np.sum(sel & y) / np.sum(sel | y))


def samples(seed: int, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities in distinct bins (so no two samples tie), labels correlated with them."""
    rng = np.random.default_rng(seed)
    p = (rng.choice(BINS, n, replace=False) + rng.uniform(0.1, 0.9, n)) / BINS
    y = rng.random(n) < p
    return p.astype(np.float64), y


def counts_of(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> ProbabilityCounts:
    ref = y.astype(np.uint8)[None]
    return probability_counts(p[None], np.ones_like(ref, bool), ref, bins)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_average_precision_equals_brute_force(seed: int) -> None:
    p, y = samples(seed)
    m = probability_metrics(counts_of(p, y))
    assert m["pr_auc"] == pytest.approx(brute_ap(p, y), abs=1e-12)
    assert m["pixels"] == 50 and m["prevalence"] == pytest.approx(y.mean())


def test_ties_are_grouped_like_equal_scores() -> None:
    rng = np.random.default_rng(7)
    p = rng.integers(0, 17, 200) / 16  # 17 distinct values, each on a bin edge
    y = rng.random(200) < p
    m = probability_metrics(counts_of(p, y))
    assert m["pr_auc"] == pytest.approx(brute_ap(p, y), abs=1e-12)


def test_coarse_bins_merge_close_scores() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([False, True, True, False])
    fine = probability_metrics(counts_of(p, y))["pr_auc"]
    assert fine == pytest.approx(brute_ap(p, y))  # (1/2)(1/2) + (1/2)(2/3)
    coarse = probability_metrics(counts_of(p, y, bins=2))["pr_auc"]
    assert coarse == pytest.approx(0.5)  # all four tie in the top bin: precision 2/4


@pytest.mark.parametrize("seed", [0, 5])
def test_brier_is_exact(seed: int) -> None:
    p, y = samples(seed)
    m = probability_metrics(counts_of(p, y, bins=16))  # coarse bins do not touch the Brier score
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)


def test_iou_of_every_cut_and_the_best_cut() -> None:
    p, y = samples(11, 200)
    c = counts_of(p, y)
    curve = iou_curve(c)
    assert curve is not None
    for j in range(0, BINS, 7):
        assert curve[j] == pytest.approx(brute_iou(p, y, j / BINS), abs=1e-15)
    m = probability_metrics(c)
    best_raw = max(brute_iou(p, y, v) for v in np.unique(p))  # optimum over every raw cut
    assert m["best_cut_iou"] == pytest.approx(best_raw, abs=1e-15)
    assert brute_iou(p, y, m["best_cut"]) == pytest.approx(best_raw, abs=1e-15)
    assert m["iou_at_half"] == pytest.approx(brute_iou(p, y, 0.5), abs=1e-15)


def test_best_cut_is_the_middle_of_a_plateau() -> None:
    p = np.array([0.1] * 5 + [0.9] * 5)
    y = np.array([False] * 5 + [True] * 5)
    m = probability_metrics(counts_of(p, y))
    assert m["best_cut_iou"] == 1.0 and m["pr_auc"] == 1.0
    assert abs(m["best_cut"] - 0.5) < 2 / BINS  # any cut in (0.1, 0.9] is perfect


def test_windows_and_sites_add_up_and_skip_nodata() -> None:
    rng = np.random.default_rng(3)
    prob = rng.random((40, 30)).astype(np.float32)
    ref = (rng.random((40, 30)) < prob).astype(np.uint8)
    ref[:5, :5] = 255
    valid = np.ones(prob.shape, bool)
    valid[-3:] = False
    prob[-3:] = np.nan
    whole = probability_counts(prob, valid, ref)
    strips = ProbabilityCounts.empty()
    for r0 in range(0, 40, 7):
        sl = np.s_[r0 : r0 + 7]
        strips = strips + probability_counts(prob[sl], valid[sl], ref[sl])
    assert np.array_equal(whole.positives, strips.positives)
    assert np.array_equal(whole.negatives, strips.negatives)
    assert whole.sum_sq_error == pytest.approx(strips.sum_sq_error, rel=1e-12)
    ok = valid & (ref != 255)
    assert whole.n == ok.sum() == 40 * 30 - 25 - 90
    y = ref[ok] == 1
    assert whole.metrics()["brier"] == pytest.approx(np.mean((prob[ok] - y) ** 2), rel=1e-6)


def test_undefined_cases() -> None:
    empty = ProbabilityCounts.empty().metrics()
    assert empty["pixels"] == 0 and empty["brier"] is None and empty["pr_auc"] is None
    assert "no valid pixel" in empty["notes"][0]
    no_gap = counts_of(np.array([0.2, 0.7]), np.array([False, False])).metrics()
    assert no_gap["pr_auc"] is None and no_gap["best_cut"] is None
    assert no_gap["brier"] == pytest.approx((0.04 + 0.49) / 2)
    assert "no reference gap" in no_gap["notes"][0]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        counts_of(np.array([0.5, 1.5]), np.array([True, False]))
    with pytest.raises(ValueError, match="power of two"):
        ProbabilityCounts.empty(1000)
    with pytest.raises(ValueError, match="different bins"):
        ProbabilityCounts.empty(16) + ProbabilityCounts.empty(32)
