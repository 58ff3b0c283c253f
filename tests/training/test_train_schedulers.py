"""Each schedule gives the expected learning-rate curve shape."""

from __future__ import annotations

import itertools

import pytest
import torch

from engine.errors import ConfigError
from engine.training.schedulers import build_scheduler


def _curve(name: str, steps: int = 40, **params) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = build_scheduler(name, opt, params=params, steps_per_epoch=steps, epochs=1)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_cosine_rises_linearly_then_decays():
    lrs = _curve("warmup_cosine", warmup_steps=10, min_lr_ratio=0.0)
    rise = lrs[:11]
    diffs = [b - a for a, b in itertools.pairwise(rise)]
    assert all(d == pytest.approx(diffs[0]) for d in diffs), "warm-up is linear"
    assert max(lrs) == pytest.approx(0.1)
    assert lrs.index(max(lrs)) == 10
    tail = lrs[10:]
    assert all(b <= a for a, b in itertools.pairwise(tail)), "cosine decays monotonically"
    assert tail[-1] < 0.01
    # cosine shape: slow start, fast middle
    assert (tail[0] - tail[5]) < (tail[12] - tail[17])


def test_onecycle_peaks_inside():
    lrs = _curve("onecycle", pct_start=0.3)
    peak = lrs.index(max(lrs))
    assert 8 <= peak <= 14
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs[0] < 0.1 / 10 and lrs[-1] < lrs[0]


def test_cyclic_oscillates():
    lrs = _curve("cyclic", base_lr=0.01, max_lr=0.1, step_size_up=5)
    peaks = [i for i in range(1, len(lrs) - 1) if lrs[i - 1] < lrs[i] > lrs[i + 1]]
    assert len(peaks) >= 3
    assert min(lrs) == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)


def test_plateau_reduces_after_patience():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(
        "plateau",
        opt,
        params={"patience": 2, "factor": 0.5},
        steps_per_epoch=1,
        epochs=10,
        mode="max",
    )
    lrs = []
    for metric in [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]:
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:4] == [0.1] * 4
    assert lrs[4] == pytest.approx(0.05)


def test_unknown_schedule_lists_valid_names():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match=r"warmup_cosine.*cyclic.*onecycle.*plateau"):
        build_scheduler("cosine_restarts", opt, steps_per_epoch=1, epochs=1)
    with pytest.raises(ConfigError, match=r"scheduler\.params\.warmup"):
        build_scheduler("warmup_cosine", opt, params={"warmup": 3}, steps_per_epoch=1, epochs=1)
