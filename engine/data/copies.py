"""Training copies of a site: the same canopy seen on other terrain or at a coarser resolution.

Copy 0 is the site itself. Copies ``1 .. terrain_copies`` put the site's DSM and DTM on a
seeded tilted surface (:func:`engine.data.synthetic.tilt_surface`; the CHM and labels are
unchanged). The ``coarse_copies`` after them are tilted the same way, then seen as a coarser
lidar product would show them (:func:`coarsen`): the highest DSM value and the mean DTM of
every ``coarse_factor`` x ``coarse_factor`` cell, interpolated back onto the site's grid
(bilinear), as ``resample: true`` reads a 2 m DSM onto a 1 m model. Their reference heights
are that coarse DSM minus that coarse DTM and their labels are computed from those, so the
model learns what a gap looks like in a DSM that has lost the smallest openings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.data.config import PreprocessConfig
from engine.data.labels import gap_masks
from engine.data.sites import PreparedSite
from engine.features.filters import pool_minimum, upsample

Array = NDArray[np.float32]


@dataclass
class SiteCopy:
    """What one copy of a site writes into its tiles."""

    dsm: Array
    dsm_valid: NDArray[np.bool_]
    chm: Array
    valid: NDArray[np.bool_]
    labels: NDArray[np.uint8]


def copy_count(config: PreprocessConfig) -> int:
    """Copies of every training tile besides the tile itself."""
    return config.terrain_copies + config.coarse_copies


def site_copy(prep: PreparedSite, config: PreprocessConfig, index: int, copy: int) -> SiteCopy:
    """Copy ``copy`` of site ``index`` (see the module docstring); seeded, so the same on
    every run."""
    from engine.data.synthetic import tilt_surface

    data = prep.data
    if copy == 0:
        return SiteCopy(data.dsm, data.dsm_valid, data.chm, data.valid, prep.labels)
    rng = np.random.default_rng([config.seed, index, copy, 7])
    shape = (data.dsm.shape[0], data.dsm.shape[1])
    tilt = tilt_surface(shape, rng, data.grid.pixel_size, config.terrain_max_slope_deg)
    dsm = np.where(data.dsm_valid, data.dsm + tilt, np.nan).astype(np.float32)
    if copy <= config.terrain_copies:
        return SiteCopy(dsm, data.dsm_valid, data.chm, data.valid, prep.labels)
    dtm = np.where(data.valid, dsm - data.chm, np.nan).astype(np.float32)
    dsm, dtm = coarsen(dsm, dtm, config.coarse_factor)
    dsm_valid = data.dsm_valid & np.isfinite(dsm)
    valid = data.valid & dsm_valid & np.isfinite(dtm)
    chm = np.where(valid, dsm - dtm, np.nan).astype(np.float32)
    labels = gap_masks(
        chm,
        valid,
        prep.thresholds,
        data.grid.pixel_area,
        config.min_gap_area_m2,
        config.max_gap_area_m2,
        config.nested,
    )
    return SiteCopy(
        np.where(dsm_valid, dsm, np.nan).astype(np.float32), dsm_valid, chm, valid, labels
    )


def coarsen(dsm: Array, dtm: Array, factor: int) -> tuple[Array, Array]:
    """``dsm`` and ``dtm`` (NaN: nodata) as a lidar product with ``factor`` x ``factor`` times
    larger cells shows them, back on their own grid: the highest DSM value and the mean DTM of
    each cell, interpolated bilinearly to the pixel centres (cells with no valid pixel stay
    NaN)."""
    shape = dsm.shape
    low, _ = pool_minimum(-dsm, np.isfinite(dsm), factor)
    top = upsample(-low, factor, shape)
    return top, upsample(pool_mean(dtm, factor), factor, shape)


def pool_mean(values: Array, factor: int) -> NDArray[np.float64]:
    """Mean of the finite pixels of each ``factor`` x ``factor`` cell (NaN where none is); a
    last partial row or column of cells averages the pixels it has."""
    h, w = values.shape
    hc, wc = -(-h // factor), -(-w // factor)
    pad = ((0, hc * factor - h), (0, wc * factor - w))
    ok = np.pad(np.isfinite(values), pad)
    filled = np.pad(np.where(np.isfinite(values), values, 0.0).astype(np.float64), pad)
    total = filled.reshape(hc, factor, wc, factor).sum(axis=(1, 3))
    count = ok.reshape(hc, factor, wc, factor).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
