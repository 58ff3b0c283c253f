"""Tune the adaptive classical method on a recipe's training sites (hold-outs masked out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.data.config import PreprocessConfig, SiteConfig
from engine.data.sites import load_site
from engine.data.split import SiteTiles, holdout_rect
from engine.events import Reporter
from engine.features.config import AdaptiveParams
from engine.features.tune import TuningSite, tune_adaptive


def tuning_sites(config: PreprocessConfig, reporter: Reporter) -> list[TuningSite]:
    """The sites of ``config`` as arrays, with every hold-out rectangle (test or val) masked
    out: the classical method is tuned on training pixels only."""
    out = []
    for i, site in enumerate(config.sites):
        reporter.check_cancelled()
        data = load_site(site, config, i)
        valid = data.valid.copy()
        h, w = valid.shape
        tiles = SiteTiles(site.name, h, w, data.grid.transform, data.grid.pixel_size, [])
        for hold in config.split.holdout:
            if hold.site == site.name:
                r0, c0, r1, c1 = holdout_rect(hold, tiles)
                valid[r0:r1, c0:c1] = False
        out.append(TuningSite(site.name, data.dsm, valid, data.chm, data.grid.pixel_size))
    return out


def tune_classical(
    config: PreprocessConfig, thresholds: Sequence[float], reporter: Reporter
) -> tuple[AdaptiveParams, dict[str, Any]]:
    """Adaptive parameters chosen on the training pixels of ``config``'s sites."""
    sites = tuning_sites(config, reporter)
    reporter.log(
        "Tuning the adaptive classical method on " + ", ".join(s.name for s in sites) + "."
    )
    params, scores = tune_adaptive(sites, thresholds)
    info: dict[str, Any] = {
        **scores,
        "sites": [s.name for s in sites],
        "pixels": {s.name: int(np.count_nonzero(s.valid)) for s in sites},
    }
    return params, info


def site_names(sites: Sequence[SiteConfig]) -> list[str]:
    """Names of ``sites``."""
    return [s.name for s in sites]
