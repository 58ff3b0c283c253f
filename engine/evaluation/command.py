"""The ``evaluate`` command: gap masks vs reference labels over sites, methods and thresholds.

Flow: check every input (before any output exists) -> in a temporary report folder run the
requested models / classical baseline on each site's DSM (:mod:`.generate`) -> per site and
method, stream the prediction against reference labels aligned onto its grid (:mod:`.compare`)
-> sum counts over sites -> write metrics.json, metrics.csv (:mod:`.metrics_file`), figures
(:mod:`.report_figures`) and report.md/.html (:mod:`.report_text`) -> rename the folder into
place. A failure or cancel leaves no report folder behind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, InputError
from engine.evaluation.compare import compare_sites, reference_of
from engine.evaluation.config import EvaluateConfig, SiteConfig
from engine.evaluation.generate import check_models, predict_sites
from engine.evaluation.metrics_file import metrics_document, write_metrics
from engine.evaluation.report_figures import draw_figures
from engine.evaluation.report_text import build_document
from engine.evaluation.results import MethodResult, aggregate, threshold_key
from engine.evaluation.site import Prediction, Preview, Settings, open_prediction, select_bands
from engine.events import NullReporter, Reporter
from engine.io.files import atomic_dir, atomic_write_text, check_output_dir
from engine.io.raster import read_info

__all__ = ["EvaluateConfig", "SiteConfig", "run_evaluate"]

Predictions = dict[str, dict[str, Prediction]]
"""Site name -> method label -> prediction."""


def run_evaluate(config: EvaluateConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Evaluate every site and method; write the report folder; return headline numbers."""
    reporter = reporter or NullReporter()
    config.validate()
    check_output_dir(config.output, config.overwrite)
    preds = _open_inputs(config)
    thresholds = _given_thresholds(config, preds)
    final = Path(config.output)
    with atomic_dir(final, overwrite=config.overwrite, command="evaluate") as tmp:
        if config.models or config.classical:
            thresholds = _add_generated(config, preds, thresholds, tmp, reporter)
        assert thresholds is not None
        settings = _settings(config, thresholds)
        per_site, previews = compare_sites(
            config, preds, thresholds, settings, (tmp, final), reporter
        )
        doc, figures = _write_report(config, thresholds, per_site, previews, tmp, final, reporter)
    reporter.progress(1.0, "done")
    return _result(final, doc, figures, thresholds)


def _open_inputs(config: EvaluateConfig) -> Predictions:
    """Check every given input before anything is written: references, the DSMs the methods
    run on, the given predictions (opened) and the model files."""
    given: Predictions = {}
    runs = bool(config.models) or config.classical
    for site in config.sites:
        reference_of(site).check()
        if runs and site.dsm is not None:
            read_info(site.dsm, what="DSM")
        given[site.name] = {
            label: open_prediction(
                label, path, site.crs, site.probabilities.get(label), site.heights.get(label)
            )
            for label, path in site.predictions.items()
        }
    check_models(config)
    return given


def _given_thresholds(config: EvaluateConfig, given: Predictions) -> list[float] | None:
    """The configured thresholds, else those every given prediction has (None when there are
    no given predictions: the generated ones then decide). The given predictions' bands are
    selected, and ``figure_threshold`` checked, before anything is written."""
    all_given = [p for preds in given.values() for p in preds.values()]
    thresholds: list[float] | None = list(config.thresholds) if config.thresholds else None
    if thresholds is None and all_given:
        thresholds = common_thresholds(all_given)
    if thresholds is not None:
        for p in all_given:
            select_bands(p, thresholds)
        _preview_index(config, thresholds)
    return thresholds


def _add_generated(
    config: EvaluateConfig,
    preds: Predictions,
    thresholds: list[float] | None,
    folder: Path,
    reporter: Reporter,
) -> list[float]:
    """Run the models and the classical baseline into ``folder``, add their predictions to
    ``preds`` and return the thresholds (those every generated prediction has, when not yet
    known); the generated predictions' bands are selected."""
    generated = predict_sites(config, thresholds, folder, reporter)
    for site, labels in generated.items():
        preds[site].update(labels)
    new = [p for labels in generated.values() for p in labels.values()]
    if thresholds is None:
        thresholds = common_thresholds(new)
    for p in new:
        select_bands(p, thresholds)
    return thresholds


def common_thresholds(preds: list[Prediction]) -> list[float]:
    """Thresholds described in every prediction (sorted); InputError when there are none."""
    sets = []
    for p in preds:
        ts = p.thresholds
        if ts is None:
            raise InputError(
                f"The bands of the prediction '{p.method}' ({p.path.name}) carry no "
                "'gap <= X m' description, so their thresholds are unknown.",
                "Set 'thresholds' (one per band, in band order).",
            )
        sets.append({round(t, 6) for t in ts})
    common = sorted(set.intersection(*sets)) if sets else []
    if not common:
        raise InputError(
            "The predictions share no height threshold: "
            + "; ".join(
                f"{p.method}: {', '.join(threshold_key(t) for t in p.thresholds or [])} m"
                for p in preds
            ),
            "Set 'thresholds' to values every prediction has, or evaluate them separately.",
        )
    return [float(t) for t in common]


def _preview_index(config: EvaluateConfig, thresholds: list[float]) -> int:
    """Index of the threshold the error maps show: ``figure_threshold``, else the middle one."""
    if config.figure_threshold is None:
        return len(thresholds) // 2
    for i, t in enumerate(thresholds):
        if math.isclose(t, config.figure_threshold, abs_tol=1e-6):
            return i
    raise ConfigError(
        f"Config key 'figure_threshold' = {config.figure_threshold:g} is not an evaluated "
        f"threshold ({', '.join(threshold_key(t) for t in thresholds)} m)."
    )


def _settings(config: EvaluateConfig, thresholds: list[float]) -> Settings:
    """How predictions are compared (``figure_threshold`` is checked even without figures)."""
    preview_index = _preview_index(config, thresholds)
    filt = config.filter_predicted_objects
    return Settings(
        cell_size_m=config.cell_size_m,
        size_edges=tuple(config.size_classes_m2),
        min_iou=config.min_iou,
        pred_min_area_m2=config.min_gap_area_m2 if filt else None,
        pred_max_area_m2=config.max_gap_area_m2 if filt else None,
        preview_index=preview_index if config.figures else None,
        probability_bins=config.probability_bins,
        height_edges=tuple(config.height_classes_m),
        resampling=config.resampling,
    )


def _write_report(
    config: EvaluateConfig,
    thresholds: list[float],
    per_site: dict[str, dict[str, MethodResult]],
    previews: dict[tuple[str, str], Preview],
    tmp: Path,
    final: Path,
    reporter: Reporter,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Pool every method over the sites, then write metrics.json and the CSV tables, the
    figures (when asked) and report.md/.html into ``tmp``; return the metrics document and the
    figures (title -> path relative to the report folder)."""
    methods = list(dict.fromkeys(m for site in per_site.values() for m in site))
    totals = {m: aggregate([s[m] for s in per_site.values() if m in s]) for m in methods}
    reporter.progress(0.9, "report")
    doc = metrics_document(config, thresholds, per_site, totals, final)
    write_metrics(tmp, doc)
    figures = draw_figures(tmp, per_site, totals, previews, reporter) if config.figures else {}
    text = build_document(doc, figures)
    atomic_write_text(tmp / "report.md", text.to_markdown())
    atomic_write_text(tmp / "report.html", text.to_html())
    return doc, figures


def _result(
    final: Path, doc: dict[str, Any], figures: dict[str, str], thresholds: list[float]
) -> dict[str, Any]:
    """The command's result: the report's paths and the pooled IoU per method and threshold."""
    return {
        "output": str(final),
        "metrics": str(final / "metrics.json"),
        "csv": str(final / "metrics.csv"),
        "report": str(final / "report.md"),
        "html": str(final / "report.html"),
        "figures": [str(final / rel) for rel in figures.values()],
        "thresholds": thresholds,
        "iou": {
            m: {threshold_key(b["threshold_m"]): b["pixel"]["iou"] for b in d["thresholds"]}
            for m, d in doc["aggregate"]["methods"].items()
        },
    }
