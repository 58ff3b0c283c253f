"""Spatially blocked split: no leakage, reproducible, hold-outs."""

from __future__ import annotations

from affine import Affine

from engine.config.base import from_dict
from engine.data.config import SplitConfig
from engine.data.split import SiteTiles, assign_splits
from engine.data.tiling import plan_tiles

T = Affine(1.0, 0, 1000.0, 0, -1.0, 5000.0)


def _site(name: str, h: int, w: int, size: int = 32, overlap: int = 8) -> SiteTiles:
    return SiteTiles(name, h, w, T, 1.0, plan_tiles(h, w, size, overlap))


def _no_leak(result) -> None:  # type: ignore[no-untyped-def]
    train = [(s, t) for s, t in result.splits["train"]]
    for other in ("val", "test"):
        for s, t in result.splits[other]:
            assert not any(s == s2 and t.overlaps(t2) for s2, t2 in train), (other, t)
    assert not any(
        s == s2 and t.overlaps(t2)
        for s, t in result.splits["val"]
        for s2, t2 in result.splits["test"]
    )


def test_split_has_no_overlap_between_splits_and_is_seeded() -> None:
    sites = [_site("a", 500, 400), _site("b", 300, 300)]
    cfg = SplitConfig(val_fraction=0.2, test_fraction=0.2, block_tiles=3)
    r1 = assign_splits(sites, cfg, 32, seed=1)
    _no_leak(r1)
    counts = r1.description["counts"]
    assert all(counts[s] > 0 for s in ("train", "val", "test"))
    total = sum(counts.values())
    assert counts["train"] / total > 0.4 and total + r1.dropped == sum(len(s.tiles) for s in sites)
    r2 = assign_splits(sites, cfg, 32, seed=1)
    assert r1.splits == r2.splits
    r3 = assign_splits(sites, cfg, 32, seed=2)
    assert r3.splits != r1.splits


def test_holdout_fraction_and_region() -> None:
    site = _site("harv", 320, 400)
    cfg = from_dict(
        SplitConfig,
        {"val_fraction": 0.1, "test_fraction": 0.0, "holdout": [{"site": "harv", "fraction": 0.3}]},
    )
    r = assign_splits([site], cfg, 32, seed=0)
    _no_leak(r)
    assert r.splits["test"] and all(t.col >= 280 for _, t in r.splits["test"])
    assert all(t.col + t.size <= 280 for _, t in r.splits["train"] + r.splits["val"])
    # same hold-out given in map coordinates (x 1280..1400, whole height)
    cfg2 = from_dict(
        SplitConfig,
        {"test_fraction": 0.0, "holdout": [{"site": "harv", "region": [1280, 4680, 1400, 5000]}]},
    )
    r2 = assign_splits([site], cfg2, 32, seed=0)
    assert {(t.row, t.col) for _, t in r2.splits["test"]} == {
        (t.row, t.col) for _, t in r.splits["test"]
    }
