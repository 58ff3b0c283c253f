"""The report folder's machine-readable results: ``metrics.json`` and the CSV tables.

``metrics.json`` (format :data:`~engine.evaluation.report.METRICS_FORMAT`) holds the settings,
the reference label rule, every site's and the pooled results; the CSV files flatten it to one
row per site (or ``all``), method and threshold.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine import __version__
from engine.evaluation.config import EvaluateConfig
from engine.evaluation.report import (
    METRICS_FORMAT,
    METRICS_FORMAT_VERSION,
    flat_row,
    write_csv,
    write_json,
)
from engine.evaluation.report_layers import write_layer_csv
from engine.evaluation.results import MethodResult


def metrics_document(
    config: EvaluateConfig,
    thresholds: list[float],
    per_site: dict[str, dict[str, MethodResult]],
    totals: dict[str, MethodResult],
    final: Path,
) -> dict[str, Any]:
    """The ``metrics.json`` content: per site and pooled (``aggregate``) results per method."""
    from engine.data.labels import LABEL_RULE

    lm = config.lambda_method
    settings = config.to_dict()
    settings["output"] = str(final)
    return {
        "format": METRICS_FORMAT,
        "format_version": METRICS_FORMAT_VERSION,
        "engine_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "thresholds": thresholds,
        "methods": list(totals),
        "reference_labels": {
            **LABEL_RULE,
            "min_area_m2": config.min_gap_area_m2,
            "max_area_m2": config.max_gap_area_m2,
            "nested": config.reference_nested,
        },
        "settings": settings,
        "sites": {
            name: {
                "reference": {k: str(v) for k, v in _site_refs(config, name).items()},
                "methods": {m: r.to_dict(lm) for m, r in methods.items()},
            }
            for name, methods in per_site.items()
        },
        "aggregate": {
            "sites": list(per_site),
            "methods": {
                m: {**r.to_dict(lm), "sites": [s for s, ms in per_site.items() if m in ms]}
                for m, r in totals.items()
            },
        },
    }


def _site_refs(config: EvaluateConfig, name: str) -> dict[str, Path]:
    """The reference files of site ``name`` that were given."""
    site = next(s for s in config.sites if s.name == name)
    refs = {
        "reference_chm": site.reference_chm,
        "dsm": site.dsm,
        "reference_dtm": site.reference_dtm,
    }
    return {k: v for k, v in refs.items() if v is not None}


def write_metrics(folder: Path, doc: dict[str, Any]) -> None:
    """``metrics.json``, ``metrics.csv`` (per site), ``metrics_aggregate.csv`` (pooled) and the
    probability/height table of the layers, into ``folder``."""
    write_json(folder / "metrics.json", doc)
    rows = [
        flat_row(site, mdict, band)
        for site, sdict in doc["sites"].items()
        for mdict in sdict["methods"].values()
        for band in mdict["thresholds"]
    ]
    write_csv(folder / "metrics.csv", rows)
    write_csv(
        folder / "metrics_aggregate.csv",
        [
            flat_row("all", m, b)
            for m in doc["aggregate"]["methods"].values()
            for b in m["thresholds"]
        ],
    )
    write_layer_csv(folder, doc)
