"""The ``preprocess`` command: DSMs + reference heights -> a tiled, labelled, split dataset.

Per site: the reference grid is the DSM's (or the CHM's for CHM-only sites), optionally
resampled to ``pixel_size`` and/or reprojected to ``target_crs``. Every other raster (CHM, DTM)
is resampled onto that grid. The reference heights are ``CHM`` when given, else ``DSM - DTM``;
CHM-only sites get ``DSM = CHM + synthetic terrain`` (:func:`engine.data.synthetic.terrain`) so
the model cannot equate low surface with gap. Gap labels are computed on the whole site (size
filters need whole components), then the site is tiled; tiles are dealt to splits by spatial
blocks (:mod:`engine.data.split`). One site is in memory at a time (see :data:`KEEP_PX`) and
tiles go to the ``.npy`` files by ``pwrite`` (:mod:`engine.io.npy`), so memory is bounded by
the largest site, whatever the number of sites. The dataset folder (see ARCHITECTURE.md) is
written atomically: a failure or cancel leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from engine import __version__
from engine.config.base import Config, fraction, non_negative, positive
from engine.data.labels import LABEL_RULE, NODATA_LABEL, gap_fraction, gap_masks
from engine.data.normalise import NormalisationConfig
from engine.data.split import SPLITS, SiteTiles, SplitConfig, assign_splits
from engine.data.tiling import Tile, cut, plan_tiles
from engine.errors import ConfigError, CRSError, NoDataError
from engine.events import NullReporter, Reporter
from engine.features.inputs import FeatureTransform, InputTransform, LowSurfaceTransform
from engine.features.spec import FeatureSpec
from engine.io.npy import NpyItemWriter

FORMAT = "canopygaps-dataset"
FORMAT_VERSION = 1


@dataclass
class SiteConfig(Config):
    """One site: a DSM with a CHM or DTM, or a CHM alone."""

    name: str = field(metadata={"help": "Site name (unique in the dataset)."})
    dsm: Path | None = field(default=None, metadata={"help": "DSM GeoTIFF (model input)."})
    chm: Path | None = field(default=None, metadata={"help": "CHM GeoTIFF (reference heights)."})
    dtm: Path | None = field(default=None, metadata={"help": "DTM GeoTIFF (CHM = DSM - DTM)."})
    crs: str | None = field(
        default=None,
        metadata={"help": "CRS to assign to rasters that carry none (e.g. EPSG:32721)."},
    )
    synthetic_terrain: bool = field(
        default=True, metadata={"help": "CHM-only site: DSM = CHM + synthetic terrain (else flat)."}
    )
    terrain_relief_m: float = field(
        default=30.0, metadata={"help": "Relief of the synthetic terrain."}
    )

    def validate(self) -> None:
        if self.dsm is None and self.chm is None:
            raise ConfigError(f"Site '{self.name}' needs a 'dsm' (with 'chm' or 'dtm') or a 'chm'.")
        if self.dsm is not None and self.chm is None and self.dtm is None:
            raise ConfigError(
                f"Site '{self.name}' has a DSM but no reference heights.",
                "Add its 'chm' or its 'dtm' (labels come from CHM = DSM - DTM).",
            )
        if self.dsm is None and self.dtm is not None:
            raise ConfigError(
                f"Site '{self.name}' has a DTM but no DSM.", "Give 'dsm' and 'dtm', or a 'chm'."
            )


def _thresholds_ok(value: Any) -> str | None:
    if not value:
        return "give at least one threshold."
    if len(set(value)) != len(value):
        return "thresholds must be distinct."
    return None


@dataclass
class PreprocessConfig(Config):
    """Settings of the ``preprocess`` command."""

    output: Path = field(metadata={"help": "Dataset folder to write."})
    sites: list[SiteConfig] = field(
        metadata={"help": "Sites (give them in --config or --set sites=[{name: a, dsm: ...}])."}
    )
    thresholds: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={"help": "Gap height thresholds in metres.", "check": _thresholds_ok},
    )
    min_gap_area_m2: float | None = field(
        default=None, metadata={"help": "Smallest gap kept (m²).", "check": non_negative}
    )
    max_gap_area_m2: float | None = field(
        default=None, metadata={"help": "Largest gap kept (m²).", "check": non_negative}
    )
    nested: bool = field(default=True, metadata={"help": "Make masks nested across thresholds."})
    tile_size: int = field(
        default=256, metadata={"help": "Tile edge in pixels.", "check": positive}
    )
    overlap: int = field(
        default=0, metadata={"help": "Overlap between tiles in pixels.", "check": non_negative}
    )
    edge: Literal["align", "pad"] = field(
        default="align", metadata={"help": "Last tile: aligned to the edge or padded."}
    )
    max_nodata_fraction: float = field(
        default=0.5, metadata={"help": "Drop tiles with more nodata than this.", "check": fraction}
    )
    split: SplitConfig = field(default_factory=SplitConfig)
    seed: int = field(default=0, metadata={"help": "Seed of the split and synthetic terrain."})
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)
    features: FeatureSpec | None = field(
        default=None,
        metadata={
            "help": "Feature channels (engine.features) as model input instead of the one "
            "normalised-DSM channel; their adaptive-height thresholds are set to 'thresholds'."
        },
    )
    terrain_copies: int = field(
        default=0,
        metadata={
            "help": "Training-split copies of every site on a random tilted surface added to "
            "DSM and DTM alike (labels unchanged): real canopy on steeper slopes."
        },
    )
    terrain_max_slope_deg: float = field(
        default=40.0, metadata={"help": "Steepest plane slope (degrees) of the terrain copies."}
    )
    pixel_size: float | None = field(
        default=None, metadata={"help": "Resample every site to this pixel size (m)."}
    )
    target_crs: str | None = field(
        default=None, metadata={"help": "Reproject every site to this projected CRS."}
    )
    resampling: str = field(default="bilinear", metadata={"help": "Resampling when grids differ."})

    def validate(self) -> None:
        names = [s.name for s in self.sites]
        if not names:
            raise ConfigError("Config key 'sites' must list at least one site.")
        if len(set(names)) != len(names):
            raise ConfigError(f"Site names must be unique, got {names}.")
        if not 0 <= self.overlap < self.tile_size:
            raise ConfigError("Config key 'overlap' must be between 0 and tile_size - 1.")
        lo, hi = self.min_gap_area_m2, self.max_gap_area_m2
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError("min_gap_area_m2 must not exceed max_gap_area_m2.")
        if self.pixel_size is not None and self.pixel_size <= 0:
            raise ConfigError("Config key 'pixel_size' must be greater than 0.")
        if self.terrain_copies < 0 or not 0 <= self.terrain_max_slope_deg < 80:
            raise ConfigError(
                "Config keys 'terrain_copies' (>= 0) and 'terrain_max_slope_deg' (0-80) are out "
                "of range."
            )

    def input_transform(self, pixel_size: float) -> InputTransform:
        """What the model sees: the feature channels, or the normalised DSM."""
        if self.features is not None:
            return FeatureTransform(self.features, pixel_size)
        return LowSurfaceTransform(self.normalisation, pixel_size)


@dataclass
class SiteData:
    """One site's arrays on its reference grid."""

    name: str
    dsm: NDArray[np.float32]
    dsm_valid: NDArray[np.bool_]
    chm: NDArray[np.float32]
    valid: NDArray[np.bool_]
    grid: Any  # RasterInfo
    sources: dict[str, Any]


def reference_grid(site: SiteConfig, config: PreprocessConfig) -> Any:
    """The grid every raster of ``site`` is read onto (a :class:`RasterInfo`)."""
    from rasterio.warp import calculate_default_transform

    from engine.io.checks import check_band_count, check_projected
    from engine.io.grid import make_info, to_crs
    from engine.io.raster import read_info

    what = "DSM" if site.dsm is not None else "CHM"
    path = site.dsm if site.dsm is not None else site.chm
    assert path is not None
    info = read_info(path, what=what)
    check_band_count(info, 1, what=what)
    if info.crs is None and site.crs is not None:
        info = info.with_crs(site.crs)
    if config.target_crs is None and config.pixel_size is None:
        check_projected(info, what=what)
        return info
    dst = to_crs(config.target_crs) if config.target_crs else info.crs
    if info.crs is None or dst is None:
        check_projected(info, what=what)  # raises the no-CRS error
    target = make_info(1, 1, info.transform, dst)
    check_projected(target, what="target grid")
    res = config.pixel_size
    transform, width, height = calculate_default_transform(
        info.crs, dst, info.width, info.height, *info.bounds, resolution=res
    )
    if res is None:  # reprojected with GDAL's suggested size: make the pixels square
        res = float(max(abs(transform.a), abs(transform.e)))
        transform, width, height = calculate_default_transform(
            info.crs, dst, info.width, info.height, *info.bounds, resolution=res
        )
    return make_info(width, height, transform, dst, path=info.path)


def load_site(site: SiteConfig, config: PreprocessConfig, index: int) -> SiteData:
    """Read a site's rasters onto its reference grid; build DSM and reference CHM."""
    from engine.data.synthetic import terrain
    from engine.io.checks import check_band_count
    from engine.io.raster import read_aligned, read_info

    grid = reference_grid(site, config)
    sources: dict[str, Any] = {}

    def load(path: Path, what: str) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        info = read_info(path, what=what)
        check_band_count(info, 1, what=what)
        sources[what.lower()] = {"path": str(path), "grid": info.to_dict()}
        method = config.resampling
        finer = info.crs == grid.crs and info.pixel_size < 0.67 * grid.pixel_size
        if method == "bilinear" and finer:
            method = "average"  # downsampling: average the source pixels, do not alias
        try:
            return read_aligned(path, grid, method, crs=site.crs, what=what)
        except CRSError as exc:
            raise CRSError(f"Site '{site.name}': {exc.message}", exc.hint) from None

    if site.dsm is not None:
        dsm, dsm_valid = load(site.dsm, "DSM")
        if site.chm is not None:
            chm, chm_valid = load(site.chm, "CHM")
            reference = "chm"
        else:
            assert site.dtm is not None
            dtm, dtm_valid = load(site.dtm, "DTM")
            chm_valid = dsm_valid & dtm_valid
            chm = np.where(chm_valid, dsm - dtm, np.nan).astype(np.float32)
            reference = "dsm - dtm"
    else:
        assert site.chm is not None
        chm, chm_valid = load(site.chm, "CHM")
        if site.synthetic_terrain:
            rng = np.random.default_rng([config.seed, index])
            ground = terrain(
                (chm.shape[0], chm.shape[1]), rng, grid.pixel_size, site.terrain_relief_m
            )
            reference = "chm (dsm = chm + synthetic terrain)"
        else:
            ground = np.zeros(chm.shape, np.float32)
            reference = "chm (dsm = chm, flat terrain)"
        dsm = np.where(chm_valid, chm + ground, np.nan).astype(np.float32)
        dsm_valid = chm_valid.copy()
    valid = dsm_valid & chm_valid
    if not valid.any():
        raise NoDataError(
            f"Site '{site.name}' has no pixel where the DSM and the reference heights are both "
            "valid.",
            "Check the nodata values and that the rasters cover the same area (same CRS).",
        )
    sources["reference"] = reference
    return SiteData(site.name, dsm, dsm_valid, chm, valid, grid, sources)


def _grid_dict(grid: Any) -> dict[str, Any]:
    d = dict(grid.to_dict())
    d.pop("path", None)
    d.pop("count", None)
    d.pop("dtype", None)
    d.pop("nodata", None)
    return d


KEEP_PX = 2**24
"""Total site pixels (16.8 Mpx, about 250 MB of site arrays at 15 bytes per pixel with 5
thresholds) up to which the loaded sites stay in memory between the planning pass and the
tile-writing pass; beyond it each site is prepared again for the second pass, so memory is
that of the largest site (plus the kept ones), not of their sum. Six 4k² sites (16.7 Mpx
each): peak RSS 0.85 GB (the first site kept), 0.61 GB with every site reloaded (as for one
site, 19 s instead of 16 s), 2.45 GB when all sites were held and tiles memory-mapped."""


@dataclass
class PreparedSite:
    """A loaded site with its gap labels: what its statistics and tiles come from."""

    data: SiteData
    labels: NDArray[np.uint8]


def prepare_site(
    site: SiteConfig, config: PreprocessConfig, index: int, thresholds: list[float]
) -> PreparedSite:
    """Load site ``index`` and compute its labels (whole components).

    Deterministic (the synthetic terrain is seeded by ``config.seed`` and ``index``), so a
    site prepared twice gives the same arrays."""
    data = load_site(site, config, index)
    labels = gap_masks(
        data.chm,
        data.valid,
        thresholds,
        data.grid.pixel_area,
        config.min_gap_area_m2,
        config.max_gap_area_m2,
        config.nested,
    )
    return PreparedSite(data, labels)


def _site_stats(prep: PreparedSite, thresholds: list[float], n_tiles: int) -> dict[str, Any]:
    data = prep.data
    fractions = gap_fraction(prep.labels)
    return {
        "name": data.name,
        "sources": data.sources,
        "grid": _grid_dict(data.grid),
        "valid_fraction": float(data.valid.mean()),
        "gap_fraction": {f"{t:g}": f for t, f in zip(thresholds, fractions, strict=True)},
        "chm_percentiles": {
            str(p): float(v)
            for p, v in zip(
                (5, 50, 95), np.percentile(data.chm[data.valid], (5, 50, 95)), strict=True
            )
        },
        "tiles": n_tiles,
    }


def site_dsm(prep: PreparedSite, config: PreprocessConfig, index: int, copy: int) -> Any:
    """The site's DSM (``copy`` 0) or its ``copy``-th terrain copy (seeded)."""
    from engine.data.synthetic import tilt_surface

    data = prep.data
    if copy == 0:
        return data.dsm
    rng = np.random.default_rng([config.seed, index, copy, 7])
    shape = (data.dsm.shape[0], data.dsm.shape[1])
    tilt = tilt_surface(shape, rng, data.grid.pixel_size, config.terrain_max_slope_deg)
    return np.where(data.dsm_valid, data.dsm + tilt, np.nan).astype(np.float32)


def _write_site_tiles(
    prep: PreparedSite,
    slots: list[tuple[str, int, Tile]],
    arrays: dict[str, tuple[NpyItemWriter, NpyItemWriter, NpyItemWriter]],
    config: PreprocessConfig,
    index: int,
    n_train: int,
    progress: Callable[[int], None],
) -> None:
    """Cut the site's tiles (model input computed here on the whole site, once per copy) into
    their ``(split, index)`` slots; terrain copies of training tiles go to slot
    ``index + copy * n_train`` of the training split. ``progress(tiles_done)`` every 16 tiles
    (it may raise ``Cancelled``)."""
    data, size = prep.data, config.tile_size
    transform = config.input_transform(data.grid.pixel_size)
    done = 0
    for copy in range(1 + config.terrain_copies):
        x = transform.whole(site_dsm(prep, config, index, copy), data.dsm_valid)
        for split, k, t in slots:
            if copy and split != "train":
                continue
            inputs, labs, chms = arrays[split]
            slot = k + copy * n_train
            inputs.write(slot, cut(x, t.row, t.col, size, 0.0))
            labs.write(slot, cut(prep.labels, t.row, t.col, size, NODATA_LABEL))
            chm_t = cut(data.chm, t.row, t.col, size, np.nan)
            ok_t = cut(data.valid, t.row, t.col, size, False)
            chms.write(slot, np.where(ok_t, chm_t, np.nan)[None])
            done += 1
            if done % 16 == 0:
                progress(done)
        del x


def tile_count(slots: list[tuple[str, int, Tile]], copies: int) -> int:
    """Tiles a site writes: each slot once, training slots once more per terrain copy."""
    return len(slots) + copies * sum(1 for s, _, _ in slots if s == "train")


def run_preprocess(
    config: PreprocessConfig, reporter: Reporter | None = None, keep_px: int | None = None
) -> dict[str, Any]:
    """Build the dataset folder ``config.output``; returns paths, counts and per-site stats.

    Two passes over the sites: plan (load, label, tile, statistics) and write (cut the tiles
    into the split arrays). Sites stay in memory between them while their total pixels are at
    most ``keep_px`` (default :data:`KEEP_PX`), else each is prepared again for the second pass.
    """
    from engine.io.failures import check_free_space
    from engine.io.files import atomic_dir, atomic_write_text, check_output_dir, output_path

    reporter = reporter or NullReporter()
    check_output_dir(config.output)
    reporter.progress(0.0, "preprocess")
    thresholds = [float(t) for t in config.thresholds]
    if config.features is not None:
        config.features.thresholds = list(thresholds)
        config.features.validate()
    size = config.tile_size
    n_sites = len(config.sites)
    budget = KEEP_PX if keep_px is None else keep_px
    kept: dict[str, PreparedSite] = {}
    kept_px = 0
    site_tiles: list[SiteTiles] = []
    site_stats: list[dict[str, Any]] = []
    pixel_sizes: set[float] = set()
    for i, site in enumerate(config.sites):
        rep = reporter.sub(0.5 * i / n_sites, 0.5 * (i + 1) / n_sites, f"site {site.name}")
        rep.progress(0.0)
        prep = prepare_site(site, config, i, thresholds)
        rep.progress(0.7)
        data = prep.data
        h, w = data.chm.shape
        try:
            tiles = plan_tiles(
                h,
                w,
                size,
                config.overlap,
                data.valid,
                config.max_nodata_fraction,
                config.edge,
                what=f"site '{site.name}'",
            )
        except NoDataError as exc:
            raise NoDataError(exc.message, exc.hint) from None
        site_tiles.append(
            SiteTiles(data.name, h, w, data.grid.transform, data.grid.pixel_size, tiles)
        )
        pixel_size = data.grid.pixel_size
        pixel_sizes.add(round(pixel_size, 9))
        stats = _site_stats(prep, thresholds, len(tiles))
        site_stats.append(stats)
        if kept_px + h * w <= budget:
            kept[site.name] = prep
            kept_px += h * w
        del prep, data
        rep.progress(1.0)
        reporter.log(
            f"Site {site.name}: {w} x {h} px at {pixel_size:g} m, "
            f"{len(tiles)} tiles, gap "
            + ", ".join(
                f"{t:g} m {f:.1%}"
                for t, f in zip(thresholds, stats["gap_fraction"].values(), strict=True)
                if f is not None
            )
        )

    if len(pixel_sizes) > 1:
        reporter.log(
            f"Sites have different pixel sizes {sorted(pixel_sizes)}; set 'pixel_size' to resample "
            "them to one, as a model sees one pixel size.",
            "warning",
        )
    split = assign_splits(site_tiles, config.split, size, config.seed)
    for s in SPLITS:
        if not split.splits[s] and (s == "train" or getattr(config.split, f"{s}_fraction") > 0):
            reporter.log(f"Split '{s}' has no tile (sites too small for the blocks?).", "warning")
    slots: dict[str, list[tuple[str, int, Tile]]] = {site.name: [] for site in config.sites}
    for s in SPLITS:
        for k, (name, t) in enumerate(split.splits[s]):
            slots[name].append((s, k, t))
    out = Path(config.output)
    n_train = len(split.splits["train"])
    counts = {s: len(split.splits[s]) for s in SPLITS}
    counts["train"] *= 1 + config.terrain_copies
    channels = config.input_transform(1.0).channels
    per_tile = size * size * (4 * channels + len(thresholds) + 4)  # inputs, labels, chm
    n_tiles = sum(counts.values())
    check_free_space(output_path(out), per_tile * n_tiles, f"the dataset ({n_tiles} tiles)")
    with atomic_dir(out, command="preprocess") as tmp:
        arrays: dict[str, tuple[NpyItemWriter, NpyItemWriter, NpyItemWriter]] = {}
        with ExitStack() as files:
            for s in SPLITS:
                folder = tmp / s
                folder.mkdir()
                n = counts[s]
                arrays[s] = (
                    files.enter_context(
                        NpyItemWriter(folder / "inputs.npy", n, (channels, size, size), np.float32)
                    ),
                    files.enter_context(
                        NpyItemWriter(
                            folder / "labels.npy", n, (len(thresholds), size, size), np.uint8
                        )
                    ),
                    files.enter_context(
                        NpyItemWriter(folder / "chm.npy", n, (1, size, size), np.float32)
                    ),
                )
            n_total, done = max(1, sum(counts.values())), 0
            for i, site in enumerate(config.sites):
                site_prep = kept.pop(site.name, None)
                if site_prep is None:
                    site_prep = prepare_site(site, config, i, thresholds)

                def progress(n: int, before: int = done) -> None:
                    reporter.progress(0.5 + 0.48 * (before + n) / n_total, "write tiles")

                _write_site_tiles(site_prep, slots[site.name], arrays, config, i, n_train, progress)
                n_site = tile_count(slots[site.name], config.terrain_copies)
                progress(n_site)  # also checks for cancel
                done += n_site
                del site_prep
        for s in SPLITS:
            records = [{"site": name, "row": t.row, "col": t.col} for name, t in split.splits[s]]
            if s == "train":
                records += [
                    {**r, "terrain_copy": c}
                    for c in range(1, config.terrain_copies + 1)
                    for r in records[:n_train]
                ]
            (tmp / s / "tiles.json").write_text(json.dumps(records), encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "engine_version": __version__,
            "thresholds": thresholds,
            "tile_size": size,
            "overlap": config.overlap,
            "channels": (
                config.features.channel_names() if config.features else ["normalised_dsm"]
            ),
            "pixel_size": pixel_sizes.pop() if len(pixel_sizes) == 1 else None,
            "normalisation": {} if config.features else config.normalisation.to_dict(),
            "features": config.features.to_dict() if config.features else None,
            "terrain_copies": config.terrain_copies,
            "label_rule": {
                **LABEL_RULE,
                "min_area_m2": config.min_gap_area_m2,
                "max_area_m2": config.max_gap_area_m2,
                "nested": config.nested,
            },
            "sites": site_stats,
            "split": split.description,
            "counts": counts,
            "seed": config.seed,
        }
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, allow_nan=False))
        config.save(tmp / "config.yaml")
        reporter.progress(0.99, "write tiles")
    reporter.progress(1.0, "preprocess")
    reporter.log(
        f"Dataset written to {out}: " + ", ".join(f"{s} {len(split.splits[s])}" for s in SPLITS)
    )
    return {
        "output": str(out),
        "manifest": str(out / "manifest.json"),
        "counts": manifest["counts"],
        "dropped_tiles": split.dropped,
        "sites": {st["name"]: st["gap_fraction"] for st in site_stats},
    }
