"""The human-readable report (Markdown / HTML) built from the metrics document."""

from __future__ import annotations

from typing import Any

from engine.evaluation.report import Document
from engine.evaluation.report_layers import height_section, layer_definitions, probability_section
from engine.evaluation.results import threshold_key

DEFINITIONS = [
    "Pixel metrics come from confusion counts summed over the whole area of every site "
    "(never averaged per tile or per site): IoU = TP/(TP+FP+FN), F1 = 2TP/(2TP+FP+FN), "
    "kappa = (po - pe)/(1 - pe). Only pixels valid in both prediction and reference count.",
    "Objects: 8-connected gaps matched one-to-one at IoU >= min_iou; object precision = matched "
    "predicted / predicted gaps, recall = matched reference / reference gaps.",
    "lambda: maximum-likelihood power-law exponent of gap areas (ForestGapR GapSizeFDist); "
    "continuous: 1 + n / sum(ln(x / xmin)), xmin = smallest gap.",
    "Gap fraction per cell: R² = 1 - SS_res/SS_tot with the reference as observed values; "
    "bias = mean(predicted - reference).",
    "Nesting violation: pixel that is gap at a lower threshold but not at the next higher one, "
    "over the pixels valid in every band.",
    "'–' marks a metric that is undefined (zero denominator); metrics.json gives the reason.",
]


def _comparison_rows(methods: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in methods.items():
        for b in m["thresholds"]:
            px, obj, gf = b["pixel"], b["objects"]["all"], b["gap_fraction"]
            sd = b["size_distribution"]
            rows.append(
                [
                    name,
                    threshold_key(b["threshold_m"]),
                    px["iou"],
                    px["f1"],
                    px["precision"],
                    px["recall"],
                    px["kappa"],
                    obj["f1"],
                    sd["pred"]["lambda"],
                    sd["ref"]["lambda"],
                    gf["r2"],
                    gf["rmse"],
                    gf["bias"],
                ]
            )
    return rows


COMPARISON_HEADER = [
    "method",
    "threshold (m)",
    "IoU",
    "F1",
    "precision",
    "recall",
    "kappa",
    "object F1",
    "λ pred",
    "λ ref",
    "gap fraction R²",
    "RMSE",
    "bias",
]


def _area(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:g} m²"


def build_document(doc: dict[str, Any], figures: dict[str, str]) -> Document:
    """Report blocks: headline IoU table, comparison, nesting, figures, per site, definitions."""
    d = Document("Canopy gap evaluation")
    _introduction(d, doc)
    _pooled_sections(d, doc)
    _figure_section(d, figures)
    _site_sections(d, doc["sites"], figures)
    d.heading("Definitions")
    d.bullets(DEFINITIONS + layer_definitions(doc))
    return d


def _introduction(d: Document, doc: dict[str, Any]) -> None:
    """Engine version, date, sites, methods and thresholds; the reference label rule."""
    d.para(
        f"Engine {doc['engine_version']}, {doc['created']}. Sites: {', '.join(doc['sites'])}. "
        f"Methods: {', '.join(doc['methods'])}. Thresholds: "
        f"{', '.join(threshold_key(t) for t in doc['thresholds'])} m."
    )
    rule = doc["reference_labels"]
    d.para(
        f"Reference labels: {rule['gap']}, {rule['connectivity']}-connected, smallest gap "
        f"{_area(rule['min_area_m2'])}, largest gap {_area(rule['max_area_m2'])}."
    )


def _pooled_sections(d: Document, doc: dict[str, Any]) -> None:
    """The sections on every method pooled over the sites: IoU per threshold, comparison of
    methods, probabilities, height error, nesting violations and objects by gap size."""
    agg = doc["aggregate"]["methods"]
    scope = "all sites pooled" if len(doc["sites"]) > 1 else "one site"
    d.heading(f"IoU per threshold ({scope})")
    d.table(
        ["method", *[f"{threshold_key(t)} m" for t in doc["thresholds"]]],
        [[name, *[b["pixel"]["iou"] for b in m["thresholds"]]] for name, m in agg.items()],
    )
    d.heading(f"Comparison of methods ({scope})")
    d.table(COMPARISON_HEADER, _comparison_rows(agg))
    probability_section(d, agg, f"Gap probabilities ({scope})")
    height_section(d, agg, f"Canopy height error ({scope})")
    d.heading("Nesting violations of the predictions")
    d.table(NESTING_HEADER, _nesting_rows(agg))
    d.heading("Objects by gap size")
    d.table(SIZE_CLASS_HEADER, _size_class_rows(agg))


NESTING_HEADER = ["method", "violation rate", "violating pixels", "valid pixels"]


def _nesting_rows(methods: dict[str, Any]) -> list[list[Any]]:
    """One row per method: violation rate, violating and valid pixels."""
    return [
        [
            name,
            m["nesting"]["rate"],
            m["nesting"]["violating_pixels"],
            m["nesting"]["valid_pixels"],
        ]
        for name, m in methods.items()
    ]


SIZE_CLASS_HEADER = [
    "method",
    "threshold (m)",
    "size (m²)",
    "predicted",
    "reference",
    "precision",
    "recall",
    "F1",
]


def _size_class_rows(methods: dict[str, Any]) -> list[list[Any]]:
    """One row per method, threshold and gap size class: object counts and matching scores."""
    rows = []
    for name, m in methods.items():
        for b in m["thresholds"]:
            for c in b["objects"]["by_size"]:
                rows.append(
                    [
                        name,
                        threshold_key(b["threshold_m"]),
                        c["size_class_m2"],
                        c["n_pred"],
                        c["n_ref"],
                        c["precision"],
                        c["recall"],
                        c["f1"],
                    ]
                )
    return rows


def _figure_section(d: Document, figures: dict[str, str]) -> None:
    """The pooled figures (error maps go to their site), or why there are none."""
    if figures:
        d.heading("Figures")
        for caption, rel in figures.items():
            if not caption.startswith("Error map"):
                d.image(rel, caption)
    else:
        d.para("Figures were not drawn (disabled, or matplotlib is not installed).")


def _site_sections(d: Document, sites: dict[str, Any], figures: dict[str, str]) -> None:
    """Per site: comparison of methods, probabilities, height error and its error maps."""
    d.heading("Per site")
    for site, s in sites.items():
        d.heading(site, 3)
        d.table(COMPARISON_HEADER, _comparison_rows(s["methods"]))
        probability_section(d, s["methods"], f"Gap probabilities: {site}", 4)
        height_section(d, s["methods"], f"Canopy height error: {site}", 4)
        for caption, rel in figures.items():
            if caption.startswith(f"Error map: {site},"):
                d.image(rel, caption)
