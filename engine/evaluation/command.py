"""The ``evaluate`` command: gap masks vs reference labels over sites, methods and thresholds.

Flow: check every input (before any output exists) -> in a temporary report folder run the
requested models / classical baseline on each site's DSM -> per site and method, stream the
prediction against reference labels aligned onto its grid -> sum counts over sites -> write
metrics.json, metrics.csv, figures and report.md/.html -> rename the folder into place.
A failure or cancel leaves no report folder behind.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine import __version__
from engine.errors import ConfigError, InputError, MissingDependencyError
from engine.evaluation.config import EvaluateConfig, SiteConfig
from engine.evaluation.layers import add_layer_metrics, layer_requests, written_layers
from engine.evaluation.report import (
    METRICS_FORMAT,
    METRICS_FORMAT_VERSION,
    flat_row,
    write_csv,
    write_json,
)
from engine.evaluation.report_layers import write_layer_csv
from engine.evaluation.report_text import build_document
from engine.evaluation.results import MethodResult, aggregate, threshold_key
from engine.evaluation.site import (
    Prediction,
    Preview,
    Reference,
    Settings,
    evaluate_prediction,
    open_prediction,
    reference_labels,
    select_bands,
)
from engine.events import NullReporter, Reporter
from engine.io.files import atomic_dir, atomic_write_text, check_output_dir
from engine.io.raster import read_info

CLASSICAL = "classical"
REF21_LABEL = "ref21"

__all__ = ["EvaluateConfig", "SiteConfig", "run_evaluate"]


def slug(text: str) -> str:
    """File-name-safe form of a site or method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def model_labels(models: list[Path]) -> list[str]:
    """Method labels of model files: the file stem, made unique with -2, -3..."""
    labels: list[str] = []
    for m in models:
        base, label, i = m.stem, m.stem, 2
        while label in labels:
            label, i = f"{base}-{i}", i + 1
        labels.append(label)
    return labels


def _reference(site: SiteConfig) -> Reference:
    if site.reference_chm is not None:
        return Reference(chm=site.reference_chm, crs=site.crs)
    return Reference(dsm=site.dsm, dtm=site.reference_dtm, crs=site.crs)


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


def _check_models(config: EvaluateConfig) -> None:
    from engine.models.modelfile import read_description

    for m in config.models:
        read_description(m)  # a clear error for a missing, folder, corrupt or foreign file


def _generate(
    config: EvaluateConfig,
    site: SiteConfig,
    thresholds: list[float] | None,
    folder: Path,
    reporter: Reporter,
) -> dict[str, tuple[Path, dict[str, Path]]]:
    """Run the classical baseline and the models on the site's DSM.

    Returns label -> (gap mask, float layers written: probabilities, heights). ``thresholds``
    (when already known) are passed on, so every method predicts the same ones.
    """
    from engine.config.base import to_dict
    from engine.inference.classical_core import REF21

    jobs: list[tuple[str, str, dict[str, Any]]] = []
    if config.classical:
        jobs.append((CLASSICAL, "classical", {"adaptive": to_dict(config.adaptive)}))
        jobs.append((REF21_LABEL, "classical", dict(REF21)))
    for label, model in zip(model_labels(config.models), config.models, strict=True):
        jobs.append((label, "infer", {"model": str(model), "resample": config.resample}))
    written: dict[str, tuple[Path, dict[str, Path]]] = {}
    for i, (label, command, extra) in enumerate(jobs):
        out = folder / "predictions" / slug(site.name) / f"{slug(label)}.tif"
        params: dict[str, Any] = {"dsm": str(site.dsm), "output": str(out), **extra}
        if thresholds:
            params["thresholds"] = list(thresholds)
        reporter.log(f"Site '{site.name}': running {label}.")
        sub = reporter.sub(i / len(jobs), (i + 1) / len(jobs), f"{label} on {site.name}")
        written[label] = (out, _run_command(command, params, site, sub))
    return written


def _run_command(
    command: str, params: dict[str, Any], site: SiteConfig, reporter: Reporter
) -> dict[str, Path]:
    """Run ``infer`` or ``classical`` through the engine's command table (lazy imports), asking
    for the float layers it offers; return those it wrote."""
    import dataclasses

    from engine.api import get_command
    from engine.config.base import from_dict

    config_cls, function = get_command(command).load()
    if site.crs and "crs" in {f.name for f in dataclasses.fields(config_cls)}:
        params["crs"] = site.crs
    requests = layer_requests(config_cls, params)
    function(from_dict(config_cls, {**params, **requests}), reporter)
    return written_layers(requests)


def _settings(config: EvaluateConfig, preview_index: int | None) -> Settings:
    filt = config.filter_predicted_objects
    return Settings(
        cell_size_m=config.cell_size_m,
        size_edges=tuple(config.size_classes_m2),
        min_iou=config.min_iou,
        pred_min_area_m2=config.min_gap_area_m2 if filt else None,
        pred_max_area_m2=config.max_gap_area_m2 if filt else None,
        preview_index=preview_index,
        probability_bins=config.probability_bins,
        height_edges=tuple(config.height_classes_m),
        resampling=config.resampling,
    )


def _preview_index(config: EvaluateConfig, thresholds: list[float]) -> int:
    if config.figure_threshold is None:
        return len(thresholds) // 2
    for i, t in enumerate(thresholds):
        if math.isclose(t, config.figure_threshold, abs_tol=1e-6):
            return i
    raise ConfigError(
        f"Config key 'figure_threshold' = {config.figure_threshold:g} is not an evaluated "
        f"threshold ({', '.join(threshold_key(t) for t in thresholds)} m)."
    )


def _grid_key(pred: Prediction) -> tuple[Any, ...]:
    i = pred.info
    return (i.shape, tuple(i.transform)[:6], i.crs.to_string() if i.crs else None)


def run_evaluate(config: EvaluateConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Evaluate every site and method; write the report folder; return headline numbers."""
    reporter = reporter or NullReporter()
    config.validate()
    check_output_dir(config.output, config.overwrite)
    # 1. Check every given input before anything is written.
    given: dict[str, dict[str, Prediction]] = {}
    runs = bool(config.models) or config.classical
    for site in config.sites:
        _reference(site).check()
        if runs and site.dsm is not None:
            read_info(site.dsm, what="DSM")
        given[site.name] = {
            label: open_prediction(
                label, path, site.crs, site.probabilities.get(label), site.heights.get(label)
            )
            for label, path in site.predictions.items()
        }
    _check_models(config)
    all_given = [p for preds in given.values() for p in preds.values()]
    thresholds: list[float] | None = list(config.thresholds) if config.thresholds else None
    preview_k = 0
    if thresholds is None and all_given:
        thresholds = common_thresholds(all_given)
    if thresholds is not None:
        for p in all_given:
            select_bands(p, thresholds)
        preview_k = _preview_index(config, thresholds)

    final = Path(config.output)
    with atomic_dir(final, overwrite=config.overwrite, command="evaluate") as tmp:
        # 2. Predictions of models and of the classical baseline.
        preds = {name: dict(p) for name, p in given.items()}
        if runs:
            generated: list[Prediction] = []
            for i, site in enumerate(config.sites):
                sub = reporter.sub(
                    0.4 * i / len(config.sites), 0.4 * (i + 1) / len(config.sites), "predict"
                )
                for label, (path, extra) in _generate(config, site, thresholds, tmp, sub).items():
                    preds[site.name][label] = open_prediction(
                        label, path, site.crs, extra.get("probabilities"), extra.get("heights")
                    )
                    generated.append(preds[site.name][label])
            if thresholds is None:
                thresholds = common_thresholds(generated)
                preview_k = _preview_index(config, thresholds)
            for p in generated:
                select_bands(p, thresholds)
        assert thresholds is not None
        settings = _settings(config, preview_k if config.figures else None)

        # 3. Compare, site by site.
        start = 0.4 if runs else 0.0
        per_site: dict[str, dict[str, MethodResult]] = {}
        previews: dict[tuple[str, str], Preview] = {}
        n_jobs = sum(len(v) for v in preds.values())
        done = 0
        for site in config.sites:
            ref_cache: dict[tuple[Any, ...], NDArray[np.uint8]] = {}
            per_site[site.name] = {}
            for label, pred in preds[site.name].items():
                sub = reporter.sub(
                    start + (0.9 - start) * done / n_jobs,
                    start + (0.9 - start) * (done + 1) / n_jobs,
                    f"evaluate {site.name}",
                )
                key = _grid_key(pred)
                if key not in ref_cache:
                    ref_cache[key] = reference_labels(
                        _reference(site),
                        pred.info,
                        thresholds,
                        config.min_gap_area_m2,
                        config.max_gap_area_m2,
                        config.resampling,
                        config.reference_nested,
                    )
                result, preview = evaluate_prediction(
                    pred, thresholds, ref_cache[key], settings, sub
                )
                add_layer_metrics(result, pred, ref_cache[key], _reference(site), settings, sub)
                result.sources = [_shown(Path(s), tmp, final) for s in result.sources]
                per_site[site.name][label] = result
                if preview is not None:
                    previews[(site.name, label)] = preview
                done += 1
                reporter.log(
                    f"Site '{site.name}', {label}: "
                    + ", ".join(
                        f"IoU@{threshold_key(b.threshold)} m = {_num(b.confusion.metrics()['iou'])}"
                        for b in result.bands
                    )
                )

        # 4. Aggregate and write.
        methods = list(dict.fromkeys(m for site in per_site.values() for m in site))
        totals = {m: aggregate([s[m] for s in per_site.values() if m in s]) for m in methods}
        reporter.progress(0.9, "report")
        doc = _metrics_document(config, thresholds, per_site, totals, final)
        write_json(tmp / "metrics.json", doc)
        rows = [
            flat_row(site, mdict, band)
            for site, sdict in doc["sites"].items()
            for mdict in sdict["methods"].values()
            for band in mdict["thresholds"]
        ]
        write_csv(tmp / "metrics.csv", rows)
        write_csv(
            tmp / "metrics_aggregate.csv",
            [
                flat_row("all", m, b)
                for m in doc["aggregate"]["methods"].values()
                for b in m["thresholds"]
            ],
        )
        write_layer_csv(tmp, doc)
        figures = (
            _figures(config, tmp, per_site, totals, previews, reporter) if config.figures else {}
        )
        text = build_document(doc, figures)
        atomic_write_text(tmp / "report.md", text.to_markdown())
        atomic_write_text(tmp / "report.html", text.to_html())
    reporter.progress(1.0, "done")
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


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _shown(path: Path, tmp: Path, final: Path) -> str:
    try:
        return str(final / path.relative_to(tmp))
    except ValueError:
        return str(path)


def _metrics_document(
    config: EvaluateConfig,
    thresholds: list[float],
    per_site: dict[str, dict[str, MethodResult]],
    totals: dict[str, MethodResult],
    final: Path,
) -> dict[str, Any]:
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
    site = next(s for s in config.sites if s.name == name)
    refs = {
        "reference_chm": site.reference_chm,
        "dsm": site.dsm,
        "reference_dtm": site.reference_dtm,
    }
    return {k: v for k, v in refs.items() if v is not None}


def _figures(
    config: EvaluateConfig,
    tmp: Path,
    per_site: dict[str, dict[str, MethodResult]],
    totals: dict[str, MethodResult],
    previews: dict[tuple[str, str], Preview],
    reporter: Reporter,
) -> dict[str, str]:
    """Draw the PNGs; title -> path relative to the report folder. Skipped without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        reporter.log(
            str(
                MissingDependencyError(
                    "Figures need matplotlib, which is not installed.",
                    "python -m pip install matplotlib",
                )
            ),
            "warning",
        )
        return {}
    from engine.evaluation import figures as fig

    out: dict[str, str] = {}
    folder = tmp / "figures"
    results = list(totals.values())
    n_sites = len(per_site)
    scope = "all sites" if n_sites > 1 else next(iter(per_site))
    out[f"Metrics vs threshold ({scope})"] = "figures/metrics_vs_threshold.png"
    fig.metric_curves(
        results, f"Metrics vs height threshold ({scope})", folder / "metrics_vs_threshold.png"
    )
    out[f"Gap-size distributions ({scope})"] = "figures/gap_sizes.png"
    fig.size_distributions(results, f"Gap-size frequency ({scope})", folder / "gap_sizes.png")
    for m, r in totals.items():
        rel = f"figures/confusion_{slug(m)}.png"
        fig.confusion_matrices(r, f"Confusion matrices: {m} ({scope})", tmp / rel)
        out[f"Confusion matrices: {m}"] = rel
    for (site, m), pv in previews.items():
        rel = f"figures/errors_{slug(site)}_{slug(m)}.png"
        fig.error_map(pv, f"{site}: {m}, gap <= {threshold_key(pv.threshold)} m", tmp / rel)
        out[f"Error map: {site}, {m} (<= {threshold_key(pv.threshold)} m)"] = rel
        reporter.check_cancelled()
    return out
