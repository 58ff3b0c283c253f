"""Spatially blocked train/val/test split without leakage between overlapping tiles.

Each site's grid is cut into square *blocks* (``block_m`` metres, or ``block_tiles`` tiles).
Blocks, not tiles, are shuffled with the seed and dealt to the splits so that each split gets
close to its fraction of the tiles. A tile goes to the split of the blocks it covers; a tile that
straddles blocks of *different* splits is dropped. Hence no val/test tile shares a pixel with a
train tile, even with overlapping tiles: two tiles that overlap share a block.

*Hold-outs* reserve a rectangle of a site for ``test`` (or ``val``): given in map coordinates
(``region: [xmin, ymin, xmax, ymax]`` in the site's CRS) or as a ``fraction`` of the site taken
from one ``side``. Tiles wholly inside go to the hold-out split, tiles that cross its border are
dropped, and the rest of the site is split by blocks as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from engine.data.config import HoldoutConfig, SplitConfig
from engine.data.tiling import Tile
from engine.errors import ConfigError, InputError

SPLITS = ("train", "val", "test")


@dataclass
class SiteTiles:
    """The tiles planned on one site's grid."""

    name: str
    height: int
    width: int
    transform: Affine
    pixel_size: float
    tiles: list[Tile]


@dataclass
class SplitResult:
    """Tiles per split as ``(site name, tile)`` pairs, plus a JSON description."""

    splits: dict[str, list[tuple[str, Tile]]]
    dropped: int
    description: dict[str, Any]


def holdout_rect(h: HoldoutConfig, site: SiteTiles) -> tuple[int, int, int, int]:
    """The hold-out as a pixel rectangle ``(row0, col0, row1, col1)`` of the site grid."""
    if h.fraction is not None:
        nr, nc = round(h.fraction * site.height), round(h.fraction * site.width)
        return {
            "left": (0, 0, site.height, nc),
            "right": (0, site.width - nc, site.height, site.width),
            "top": (0, 0, nr, site.width),
            "bottom": (site.height - nr, 0, site.height, site.width),
        }[h.side]
    assert h.region is not None
    xmin, ymin, xmax, ymax = h.region
    inv = ~site.transform
    pts = [inv * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    cols = [p[0] for p in pts]
    rows = [p[1] for p in pts]
    r0, r1 = max(math.floor(min(rows) + 1e-9), 0), min(math.ceil(max(rows) - 1e-9), site.height)
    c0, c1 = max(math.floor(min(cols) + 1e-9), 0), min(math.ceil(max(cols) - 1e-9), site.width)
    if r1 <= r0 or c1 <= c0:
        raise InputError(
            f"Hold-out region {h.region} does not overlap site '{site.name}'.",
            "Give the region in the site's CRS, inside its extent.",
        )
    return (r0, c0, r1, c1)


def _inside(t: Tile, rect: tuple[int, int, int, int]) -> bool:
    r0, c0, r1, c1 = rect
    return t.row >= r0 and t.col >= c0 and t.row + t.size <= r1 and t.col + t.size <= c1


def _touches(t: Tile, rect: tuple[int, int, int, int]) -> bool:
    r0, c0, r1, c1 = rect
    return t.row < r1 and r0 < t.row + t.size and t.col < c1 and c0 < t.col + t.size


def _block_range(t: Tile, block: int) -> tuple[range, range]:
    rows = range(math.floor(t.row / block), math.floor((t.row + t.size - 1) / block) + 1)
    cols = range(math.floor(t.col / block), math.floor((t.col + t.size - 1) / block) + 1)
    return rows, cols


Pair = tuple[str, Tile]
"""``(site name, tile)``."""
BlockKey = tuple[str, int, int]
"""``(site name, block row, block column)``."""


def assign_splits(
    sites: list[SiteTiles], config: SplitConfig, tile_size: int, seed: int
) -> SplitResult:
    """Deal the tiles of all sites to train/val/test (reproducible for a given ``seed``)."""
    _check_holdout_sites(sites, config)
    out: dict[str, list[Pair]] = {s: [] for s in SPLITS}
    pool, dropped, holdouts = _take_holdouts(sites, config, out)
    block_px = _block_sizes(sites, config, tile_size)
    targets = {
        "train": 1 - config.val_fraction - config.test_fraction,
        "val": config.val_fraction,
        "test": config.test_fraction,
    }
    block_split = _deal_blocks(pool, block_px, targets, seed)
    _fill_edge_blocks(pool, block_px, block_split)
    dropped += _place_pool(pool, block_px, block_split, out)
    description = {
        "method": "spatial_blocks",
        "seed": seed,
        "fractions": targets,
        "block_px": block_px,
        "holdout": holdouts,
        "counts": {s: len(v) for s, v in out.items()},
        "dropped_straddling": dropped,
    }
    return SplitResult(out, dropped, description)


def _check_holdout_sites(sites: list[SiteTiles], config: SplitConfig) -> None:
    """:class:`ConfigError` when a hold-out names a site that is not in the dataset."""
    names = {s.name for s in sites}
    for h in config.holdout:
        if h.site not in names:
            raise ConfigError(
                f"Hold-out names site '{h.site}', which is not in the dataset.",
                f"Use one of: {', '.join(sorted(names))}.",
            )


def _take_holdouts(
    sites: list[SiteTiles], config: SplitConfig, out: dict[str, list[Pair]]
) -> tuple[list[tuple[SiteTiles, Tile]], int, list[dict[str, Any]]]:
    """Put the tiles inside hold-outs into their split in ``out``.

    Returns the other tiles (the pool split by blocks), the number of tiles dropped for crossing
    a hold-out's border, and the hold-outs' description."""
    pool: list[tuple[SiteTiles, Tile]] = []
    dropped = 0
    described = []
    for site in sites:
        rects = [(h, holdout_rect(h, site)) for h in config.holdout if h.site == site.name]
        for h, rect in rects:
            described.append({"site": site.name, "split": h.split, "pixel_rect": list(rect)})
        taken = 0
        for t in site.tiles:
            home = next((h.split for h, rect in rects if _inside(t, rect)), None)
            if home is not None:
                out[home].append((site.name, t))
                taken += 1
            elif any(_touches(t, rect) for _, rect in rects):
                dropped += 1
            else:
                pool.append((site, t))
        if rects and taken == 0:
            raise InputError(
                f"The hold-out of site '{site.name}' holds no whole tile.",
                "Make the hold-out region larger or the tiles smaller (tile_size).",
            )
    return pool, dropped, described


def _block_sizes(sites: list[SiteTiles], config: SplitConfig, tile_size: int) -> dict[str, int]:
    """Block edge in pixels per site: ``block_m`` metres, else ``block_tiles`` tiles."""
    block_px: dict[str, int] = {}
    for site in sites:
        b = config.block_m / site.pixel_size if config.block_m else config.block_tiles * tile_size
        block_px[site.name] = max(1, round(b))
    return block_px


def _centre_block(site: str, t: Tile, block: int) -> BlockKey:
    """The block holding the centre of tile ``t``."""
    return (site, (t.row + t.size // 2) // block, (t.col + t.size // 2) // block)


def _deal_blocks(
    pool: list[tuple[SiteTiles, Tile]],
    block_px: dict[str, int],
    targets: dict[str, float],
    seed: int,
) -> dict[BlockKey, str]:
    """Split of each block holding a tile centre: blocks in seeded random order, each to the
    split furthest below its share of the tiles (weight of a block = tiles centred in it)."""
    weight: dict[BlockKey, int] = {}
    for site, t in pool:
        key = _centre_block(site.name, t, block_px[site.name])
        weight[key] = weight.get(key, 0) + 1
    blocks = sorted(weight)
    order = np.random.default_rng(seed).permutation(len(blocks))
    total = sum(weight.values())
    have = dict.fromkeys(SPLITS, 0)
    block_split: dict[BlockKey, str] = {}
    for i in order:
        key = blocks[int(i)]
        split = max(SPLITS, key=lambda s: (targets[s] * total - have[s], targets[s]))
        block_split[key] = split
        have[split] += weight[key]
    return block_split


def _fill_edge_blocks(
    pool: list[tuple[SiteTiles, Tile]], block_px: dict[str, int], block_split: dict[BlockKey, str]
) -> None:
    """Blocks that only hold tile edges follow the block of the first tile reaching into them."""
    for site, t in pool:
        b = block_px[site.name]
        own = block_split[_centre_block(site.name, t, b)]
        rows, cols = _block_range(t, b)
        for r in rows:
            for c in cols:
                block_split.setdefault((site.name, r, c), own)


def _place_pool(
    pool: list[tuple[SiteTiles, Tile]],
    block_px: dict[str, int],
    block_split: dict[BlockKey, str],
    out: dict[str, list[Pair]],
) -> int:
    """Put each pool tile into the split of the blocks it covers; returns the number dropped
    because they straddle blocks of different splits (they would leak)."""
    dropped = 0
    for site, t in pool:
        rows, cols = _block_range(t, block_px[site.name])
        got = {block_split[(site.name, r, c)] for r in rows for c in cols}
        if len(got) == 1:
            out[got.pop()].append((site.name, t))
        else:
            dropped += 1
    return dropped
