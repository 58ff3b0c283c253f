"""Every prediction of every site compared with the site's reference, one at a time.

Reference labels are made once per prediction grid of a site (methods on the same grid share
them); each comparison streams the prediction (:func:`~engine.evaluation.site.
evaluate_prediction`) and its probability and height layers (:mod:`engine.evaluation.layers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.config import EvaluateConfig, SiteConfig
from engine.evaluation.layers import add_layer_metrics
from engine.evaluation.results import MethodResult, threshold_key
from engine.evaluation.site import (
    Prediction,
    Preview,
    Reference,
    Settings,
    evaluate_prediction,
    reference_labels,
)
from engine.events import Reporter

RefCache = dict[tuple[Any, ...], NDArray[np.uint8]]
"""Reference labels of one site by prediction grid (:func:`grid_key`)."""


def reference_of(site: SiteConfig) -> Reference:
    """The site's reference heights: its CHM, else its DSM minus its DTM."""
    if site.reference_chm is not None:
        return Reference(chm=site.reference_chm, crs=site.crs)
    return Reference(dsm=site.dsm, dtm=site.reference_dtm, crs=site.crs)


def grid_key(pred: Prediction) -> tuple[Any, ...]:
    """Shape, transform and CRS of a prediction: equal keys share reference labels."""
    i = pred.info
    return (i.shape, tuple(i.transform)[:6], i.crs.to_string() if i.crs else None)


def compare_sites(
    config: EvaluateConfig,
    preds: dict[str, dict[str, Prediction]],
    thresholds: list[float],
    settings: Settings,
    folders: tuple[Path, Path],
    reporter: Reporter,
) -> tuple[dict[str, dict[str, MethodResult]], dict[tuple[str, str], Preview]]:
    """Site -> method -> result, and the error-map previews by (site, method).

    ``folders`` is (temporary report folder, final report folder): the results name their
    sources by the final path. Progress runs to 0.9 from 0.4 (after generated predictions)
    or from 0.
    """
    start = 0.4 if config.models or config.classical else 0.0
    per_site: dict[str, dict[str, MethodResult]] = {}
    previews: dict[tuple[str, str], Preview] = {}
    n_jobs = sum(len(v) for v in preds.values())
    done = 0
    for site in config.sites:
        ref_cache: RefCache = {}
        per_site[site.name] = {}
        for label, pred in preds[site.name].items():
            sub = reporter.sub(
                start + (0.9 - start) * done / n_jobs,
                start + (0.9 - start) * (done + 1) / n_jobs,
                f"evaluate {site.name}",
            )
            result, preview = compare_one(config, site, pred, thresholds, settings, ref_cache, sub)
            result.sources = [_shown(Path(s), *folders) for s in result.sources]
            per_site[site.name][label] = result
            if preview is not None:
                previews[(site.name, label)] = preview
            done += 1
            reporter.log(f"Site '{site.name}', {label}: {_iou_summary(result)}")
    return per_site, previews


def compare_one(
    config: EvaluateConfig,
    site: SiteConfig,
    pred: Prediction,
    thresholds: list[float],
    settings: Settings,
    ref_cache: RefCache,
    reporter: Reporter,
) -> tuple[MethodResult, Preview | None]:
    """One prediction against the site's reference labels on its grid (made when not cached),
    with the metrics of its probability and height layers."""
    key = grid_key(pred)
    if key not in ref_cache:
        ref_cache[key] = reference_labels(
            reference_of(site),
            pred.info,
            thresholds,
            config.min_gap_area_m2,
            config.max_gap_area_m2,
            config.resampling,
            config.reference_nested,
        )
    result, preview = evaluate_prediction(pred, thresholds, ref_cache[key], settings, reporter)
    add_layer_metrics(result, pred, ref_cache[key], reference_of(site), settings, reporter)
    return result, preview


def _iou_summary(result: MethodResult) -> str:
    """``IoU@5 m = 0.812, ...`` of one result, for the log."""
    return ", ".join(
        f"IoU@{threshold_key(b.threshold)} m = {_num(b.confusion.metrics()['iou'])}"
        for b in result.bands
    )


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _shown(path: Path, tmp: Path, final: Path) -> str:
    """``path`` inside the temporary report folder named as it will be in the final one."""
    try:
        return str(final / path.relative_to(tmp))
    except ValueError:
        return str(path)
