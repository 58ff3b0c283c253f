"""Choose the adaptive classical method's parameters on training sites (never a test site).

Rule: for every setting of the openness measure (shared by all thresholds), and every
threshold, take the (small window, slope, large window, slope) whose gap IoU, averaged over the
training sites (each site's IoU from its summed counts, so every site counts the same, whatever
its size), is highest; then keep the openness setting with the highest sum of those averages
over the thresholds. Pixels are sub-sampled (seeded) to bound the cost; IoU differences the
sampling could flip are far below the differences the grid resolves.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.features.config import AdaptiveParams, Ground
from engine.features.ground import GroundStack, open_weight


@dataclass
class TuningSite:
    """One training site on arrays: DSM, valid mask, reference CHM (metres), pixel size."""

    name: str
    dsm: NDArray[np.float32]
    valid: NDArray[np.bool_]
    chm: NDArray[np.float32]
    pixel_size: float


@dataclass
class TuningGrid:
    """Candidate values searched by :func:`tune_adaptive`."""

    # windows are whole numbers of 2 m ground cells (odd counts) at 1 m pixels
    small_window_m: Sequence[float] = (10, 14, 18, 22, 26)
    small_slope: Sequence[float] = (0.25, 0.5, 0.75, 1.0)
    large_window_m: Sequence[float] = (26, 30, 34, 42, 50)
    large_slope: Sequence[float] = (0.25, 0.5, 0.75)
    openness_low_m: Sequence[float] = (2.0, 3.0)
    openness_window_m: Sequence[float] = (62.0, 82.0)
    open_share: Sequence[float] = (0.05, 0.075, 0.1, 0.15)
    ramp: Sequence[float] = (0.05, 0.1)
    max_samples: int = 100_000


def _sample(site: TuningSite, n: int, seed: int) -> NDArray[np.int64]:
    idx = np.flatnonzero((site.valid & np.isfinite(site.chm)).ravel())
    if idx.size > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    return idx


def _site_tables(
    site: TuningSite, thresholds: Sequence[float], grid: TuningGrid, seed: int
) -> dict[tuple[object, ...], NDArray[np.float64]]:
    """IoU per candidate (openness setting, small, large) and threshold on one site."""
    idx = _sample(site, grid.max_samples, seed)
    stack = GroundStack(site.dsm, site.valid, site.pixel_size)
    dsm = site.dsm.ravel()[idx].astype(np.float64)
    labels = [site.chm.ravel()[idx] <= t for t in thresholds]
    smalls = {
        g: stack.ground(g).ravel()[idx] for g in _grounds(grid.small_window_m, grid.small_slope)
    }
    larges = {
        g: stack.ground(g).ravel()[idx] for g in _grounds(grid.large_window_m, grid.large_slope)
    }
    out: dict[tuple[object, ...], NDArray[np.float64]] = {}
    for low, win in itertools.product(grid.openness_low_m, grid.openness_window_m):
        params = AdaptiveParams(openness_low_m=low, openness_window_m=win)
        openness = stack.openness(params).ravel()[idx]
        for share, ramp in itertools.product(grid.open_share, grid.ramp):
            params.open_share, params.ramp = share, ramp
            w = open_weight(openness, params)
            for (gs, a), (gl, b) in itertools.product(smalls.items(), larges.items()):
                h = dsm - (w * a + (1.0 - w) * b)
                ok = np.isfinite(h)
                out[(low, win, share, ramp, gs, gl)] = np.array(
                    [
                        _iou(ok & (h <= t), lab, ok)
                        for t, lab in zip(thresholds, labels, strict=True)
                    ]
                )
    return out


def _grounds(windows: Sequence[float], slopes: Sequence[float]) -> list[Ground]:
    return [Ground(float(w), float(c)) for w in windows for c in slopes]


def _iou(pred: NDArray[np.bool_], label: NDArray[np.bool_], ok: NDArray[np.bool_]) -> float:
    label = label & ok
    union = int(np.count_nonzero(pred | label))
    return int(np.count_nonzero(pred & label)) / union if union else 1.0


def _best(
    keys: list[tuple[object, ...]], mean: dict[tuple[object, ...], NDArray[np.float64]], i: int
) -> tuple[object, ...]:
    """The candidate with the highest mean IoU at threshold ``i`` (ties: by name, stable)."""
    return max(keys, key=lambda k: (float(mean[k][i]), str(k)))


def tune_adaptive(
    sites: Sequence[TuningSite],
    thresholds: Sequence[float],
    grid: TuningGrid | None = None,
    seed: int = 0,
) -> tuple[AdaptiveParams, dict[str, list[float]]]:
    """Parameters chosen on ``sites`` by the rule above, and their mean IoU per threshold."""
    grid = grid or TuningGrid()
    tables = [_site_tables(s, thresholds, grid, seed + i) for i, s in enumerate(sites)]
    mean = {k: np.mean([t[k] for t in tables], axis=0) for k in tables[0]}
    best: tuple[float, tuple[object, ...], list[tuple[object, ...]]] | None = None
    settings = sorted({k[:4] for k in mean}, key=str)
    for setting in settings:
        keys = [k for k in mean if k[:4] == setting]
        picks = [_best(keys, mean, i) for i in range(len(thresholds))]
        total = float(sum(mean[k][i] for i, k in enumerate(picks)))
        if best is None or total > best[0]:
            best = (total, setting, picks)
    assert best is not None
    _, (low, win, share, ramp), picks = best
    params = AdaptiveParams(
        thresholds=[float(t) for t in thresholds],
        small_window_m=[k[4].window_m for k in picks],  # type: ignore[attr-defined]
        small_slope=[k[4].slope for k in picks],  # type: ignore[attr-defined]
        large_window_m=[k[5].window_m for k in picks],  # type: ignore[attr-defined]
        large_slope=[k[5].slope for k in picks],  # type: ignore[attr-defined]
        openness_window_m=float(win),  # type: ignore[arg-type]
        openness_low_m=float(low),  # type: ignore[arg-type]
        open_share=float(share),  # type: ignore[arg-type]
        ramp=float(ramp),  # type: ignore[arg-type]
    )
    params.validate()
    scores = {"mean_iou": [float(mean[k][i]) for i, k in enumerate(picks)]}
    return params, scores
