"""The ``preprocess`` command: DSMs + reference heights -> a tiled, labelled, split dataset.

The steps of :func:`run_preprocess`:

1. :func:`plan_sites`: load each site onto its grid and label it (:mod:`engine.data.sites`),
   plan its tiles (:func:`engine.data.tiling.plan_tiles`) and its statistics.
2. :func:`split_tiles`: deal the tiles to train/val/test by spatial blocks
   (:mod:`engine.data.split`); :func:`engine.data.dataset_writer.plan_layout` gives each tile
   its slot in the split arrays.
3. Write the dataset folder (:mod:`engine.data.dataset_writer`): cut each site's tiles into the
   split arrays, then ``tiles.json``, ``manifest.json`` and ``config.yaml``.

One site is in memory at a time (see :data:`KEEP_PX`) and tiles go to the ``.npy`` files by
``pwrite`` (:mod:`engine.io.npy`), so memory is bounded by the largest site, whatever the number
of sites. The dataset folder (see ARCHITECTURE.md) is written atomically: a failure or cancel
leaves nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.config import PreprocessConfig, SiteConfig
from engine.data.dataset_writer import (
    DatasetLayout,
    SplitArrays,
    build_manifest,
    plan_layout,
    write_tile_records,
)
from engine.data.sites import PreparedSite, prepare_site, site_stats
from engine.data.split import SPLITS, SiteTiles, SplitResult, assign_splits
from engine.data.tiling import Tile, plan_tiles
from engine.errors import NoDataError
from engine.events import NullReporter, Reporter

KEEP_PX = 2**24
"""Total site pixels (16.8 Mpx, about 250 MB of site arrays at 15 bytes per pixel with 5
thresholds) up to which the loaded sites stay in memory between the planning pass and the
tile-writing pass; beyond it each site is prepared again for the second pass, so memory is
that of the largest site (plus the kept ones), not of their sum. Six 4k² sites (16.7 Mpx
each): peak RSS 0.85 GB (the first site kept), 0.61 GB with every site reloaded (as for one
site, 19 s instead of 16 s), 2.45 GB when all sites were held and tiles memory-mapped."""


@dataclass
class SitePlans:
    """What the planning pass found, site by site."""

    tiles: list[SiteTiles] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    """Each site's manifest entry (:func:`engine.data.sites.site_stats`)."""
    pixel_sizes: set[float] = field(default_factory=set)
    kept: dict[str, PreparedSite] = field(default_factory=dict)
    """Sites kept in memory for the writing pass (the others are prepared again)."""


def run_preprocess(
    config: PreprocessConfig, reporter: Reporter | None = None, keep_px: int | None = None
) -> dict[str, Any]:
    """Build the dataset folder ``config.output``; returns paths, counts and per-site stats.

    Two passes over the sites: plan (load, label, tile, statistics) and write (cut the tiles
    into the split arrays). Sites stay in memory between them while their total pixels are at
    most ``keep_px`` (default :data:`KEEP_PX`), else each is prepared again for the second pass.
    """
    from engine.io.files import check_output_dir

    reporter = reporter or NullReporter()
    check_output_dir(config.output)
    reporter.progress(0.0, "preprocess")
    thresholds = _thresholds(config)
    plans = plan_sites(config, thresholds, reporter, KEEP_PX if keep_px is None else keep_px)
    split = split_tiles(plans, config, reporter)
    layout = plan_layout(split, config, len(thresholds))
    manifest = write_dataset(config, thresholds, plans, split, layout, reporter)
    out = Path(config.output)
    reporter.progress(1.0, "preprocess")
    reporter.log(
        f"Dataset written to {out}: " + ", ".join(f"{s} {len(split.splits[s])}" for s in SPLITS)
    )
    return {
        "output": str(out),
        "manifest": str(out / "manifest.json"),
        "counts": manifest["counts"],
        "dropped_tiles": split.dropped,
        "sites": {st["name"]: st["gap_fraction"] for st in plans.stats},
    }


def _thresholds(config: PreprocessConfig) -> list[float]:
    """The thresholds as floats; feature channels get them as their adaptive heights."""
    thresholds = [float(t) for t in config.thresholds]
    if config.features is not None:
        config.features.thresholds = list(thresholds)
        config.features.validate()
    return thresholds


def plan_sites(
    config: PreprocessConfig, thresholds: list[float], reporter: Reporter, keep_px: int
) -> SitePlans:
    """The planning pass (progress 0 to 0.5): each site prepared, tiled and described; sites
    kept in memory while their total pixels stay within ``keep_px``."""
    plans, kept_px, n_sites = SitePlans(), 0, len(config.sites)
    for i, site in enumerate(config.sites):
        rep = reporter.sub(0.5 * i / n_sites, 0.5 * (i + 1) / n_sites, f"site {site.name}")
        rep.progress(0.0)
        prep = prepare_site(site, config, i, thresholds)
        rep.progress(0.7)
        h, w = prep.data.chm.shape
        tiles = _site_tiles(prep, site, config)
        plans.tiles.append(tiles)
        plans.pixel_sizes.add(round(tiles.pixel_size, 9))
        stats = site_stats(prep, thresholds, len(tiles.tiles))
        plans.stats.append(stats)
        if kept_px + h * w <= keep_px:
            plans.kept[site.name] = prep
            kept_px += h * w
        del prep  # the next site is loaded without this one (unless kept)
        rep.progress(1.0)
        reporter.log(_site_summary(site, tiles, thresholds, stats))
    if len(plans.pixel_sizes) > 1:
        reporter.log(
            f"Sites have different pixel sizes {sorted(plans.pixel_sizes)}; set 'pixel_size' to "
            "resample them to one, as a model sees one pixel size.",
            "warning",
        )
    return plans


def _site_tiles(prep: PreparedSite, site: SiteConfig, config: PreprocessConfig) -> SiteTiles:
    """The tiles planned on the site's grid (tiles with too much nodata dropped)."""
    data = prep.data
    h, w = data.chm.shape
    try:
        tiles: list[Tile] = plan_tiles(
            h,
            w,
            config.tile_size,
            config.overlap,
            data.valid,
            config.max_nodata_fraction,
            config.edge,
            what=f"site '{site.name}'",
        )
    except NoDataError as exc:
        raise NoDataError(exc.message, exc.hint) from None
    return SiteTiles(data.name, h, w, data.grid.transform, data.grid.pixel_size, tiles)


def _site_summary(
    site: SiteConfig, tiles: SiteTiles, thresholds: list[float], stats: dict[str, Any]
) -> str:
    """``Site a: 512 x 512 px at 1 m, 16 tiles, gap 2 m 3.1%, 5 m 7.0%``."""
    gaps = ", ".join(
        f"{t:g} m {f:.1%}"
        for t, f in zip(thresholds, stats["gap_fraction"].values(), strict=True)
        if f is not None
    )
    return (
        f"Site {site.name}: {tiles.width} x {tiles.height} px at {tiles.pixel_size:g} m, "
        f"{len(tiles.tiles)} tiles, gap " + gaps
    )


def split_tiles(plans: SitePlans, config: PreprocessConfig, reporter: Reporter) -> SplitResult:
    """The tiles of all sites dealt to the splits; warns of a split left without a tile."""
    split = assign_splits(plans.tiles, config.split, config.tile_size, config.seed)
    for s in SPLITS:
        if not split.splits[s] and (s == "train" or getattr(config.split, f"{s}_fraction") > 0):
            reporter.log(f"Split '{s}' has no tile (sites too small for the blocks?).", "warning")
    return split


def write_dataset(
    config: PreprocessConfig,
    thresholds: list[float],
    plans: SitePlans,
    split: SplitResult,
    layout: DatasetLayout,
    reporter: Reporter,
) -> dict[str, Any]:
    """The writing pass (progress 0.5 to 0.99): the dataset folder, written atomically after a
    free-space check. Returns the manifest."""
    from engine.io.failures import check_free_space
    from engine.io.files import atomic_dir, atomic_write_text, output_path

    out = Path(config.output)
    what = f"the dataset ({layout.n_tiles} tiles)"
    check_free_space(output_path(out), layout.bytes_needed(), what)
    with atomic_dir(out, command="preprocess") as tmp:
        with SplitArrays(tmp, layout, reporter) as arrays:
            for i, site in enumerate(config.sites):
                prep = plans.kept.pop(site.name, None)
                if prep is None:
                    prep = prepare_site(site, config, i, thresholds)
                arrays.write_site(prep, config, i)
                del prep  # the next site is loaded without this one
        write_tile_records(tmp, split, config, layout.n_train)
        manifest = build_manifest(
            config, thresholds, plans.stats, plans.pixel_sizes, split, layout.counts
        )
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, allow_nan=False))
        config.save(tmp / "config.yaml")
        reporter.progress(0.99, "write tiles")
    return manifest
