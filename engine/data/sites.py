"""One ``preprocess`` site in memory: its rasters on one grid, its reference heights and labels.

The reference grid is the DSM's (or the CHM's for CHM-only sites), optionally resampled to
``pixel_size`` and/or reprojected to ``target_crs`` (:func:`reference_grid`). Every other raster
(CHM, DTM) is resampled onto that grid (:func:`engine.io.raster.read_aligned`; ``average`` for
bilinear downsampling). The reference heights are ``CHM`` when given, else ``DSM - DTM``;
CHM-only sites get ``DSM = CHM + synthetic terrain`` (:func:`engine.data.synthetic.terrain`) so
the model cannot equate low surface with gap. Gap labels are computed on the whole site
(:func:`prepare_site`): size filters need whole components.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from engine.data.config import PreprocessConfig, SiteConfig
from engine.data.labels import gap_fraction, gap_masks
from engine.errors import CRSError, NoDataError

if TYPE_CHECKING:
    from engine.io.grid import RasterInfo

Band = tuple[NDArray[np.float32], NDArray[np.bool_]]
"""``(values, valid)`` of one raster band on the site's grid."""


@dataclass
class SiteData:
    """One site's arrays on its reference grid."""

    name: str
    dsm: NDArray[np.float32]
    dsm_valid: NDArray[np.bool_]
    chm: NDArray[np.float32]
    valid: NDArray[np.bool_]
    grid: RasterInfo
    sources: dict[str, Any]


@dataclass
class PreparedSite:
    """A loaded site with its gap labels: what its statistics and tiles come from."""

    data: SiteData
    labels: NDArray[np.uint8]
    thresholds: list[float]
    """The labels' thresholds, in the order of their bands."""


def reference_grid(site: SiteConfig, config: PreprocessConfig) -> RasterInfo:
    """The grid every raster of ``site`` is read onto (a :class:`RasterInfo`)."""
    from engine.io.checks import check_band_count, check_projected
    from engine.io.grid import make_info, to_crs, warped_grid
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
    return warped_grid(info, dst, config.pixel_size)


def read_onto_grid(
    path: Path,
    what: str,
    grid: RasterInfo,
    site: SiteConfig,
    config: PreprocessConfig,
    sources: dict[str, Any],
) -> Band:
    """Read the one-band raster ``path`` (the site's ``what``) onto ``grid``; record its own grid
    in ``sources``. Bilinear resampling becomes ``average`` when the source is much finer."""
    from engine.io.checks import check_band_count
    from engine.io.raster import read_aligned, read_info

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


def load_site(site: SiteConfig, config: PreprocessConfig, index: int) -> SiteData:
    """Read a site's rasters onto its reference grid; build DSM and reference CHM."""
    grid = reference_grid(site, config)
    sources: dict[str, Any] = {}

    def load(path: Path, what: str) -> Band:
        return read_onto_grid(path, what, grid, site, config, sources)

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
        ground, reference = chm_only_ground(site, config, index, grid, chm.shape)
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


def chm_only_ground(
    site: SiteConfig,
    config: PreprocessConfig,
    index: int,
    grid: RasterInfo,
    shape: tuple[int, ...],
) -> tuple[NDArray[np.float32], str]:
    """The ground under a CHM-only site (seeded synthetic terrain, or flat) and its description
    for the manifest's ``reference``."""
    from engine.data.synthetic import terrain

    if site.synthetic_terrain:
        rng = np.random.default_rng([config.seed, index])
        ground = terrain((shape[0], shape[1]), rng, grid.pixel_size, site.terrain_relief_m)
        return ground, "chm (dsm = chm + synthetic terrain)"
    return np.zeros(shape, np.float32), "chm (dsm = chm, flat terrain)"


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
    return PreparedSite(data, labels, list(thresholds))


def _grid_dict(grid: RasterInfo) -> dict[str, Any]:
    d = dict(grid.to_dict())
    d.pop("path", None)
    d.pop("count", None)
    d.pop("dtype", None)
    d.pop("nodata", None)
    return d


def site_stats(prep: PreparedSite, thresholds: list[float], n_tiles: int) -> dict[str, Any]:
    """The manifest's entry of a site: sources, grid, valid and gap fractions, CHM
    percentiles, tile count."""
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
