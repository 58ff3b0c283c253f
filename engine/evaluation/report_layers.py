"""Report parts of the float layers: gap probability metrics and canopy height error.

Built from the metrics document (``probability`` per band, ``height_error`` per method); a
section or file appears only when some method has the layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.evaluation.report import Document, write_csv
from engine.evaluation.results import threshold_key

HEIGHT_CSV = "height_error.csv"
HEIGHT_CSV_COLUMNS = ("site", "method", "class_m", "pixels", "mae", "rmse", "bias")

PROBABILITY_DEFINITION = (
    "Gap probabilities (methods that write them): PR-AUC = average precision of the gap class "
    "(sum over cuts of recall gain x precision), Brier score = mean (p - y)² over valid pixels, "
    "best cut = the probability c whose mask p >= c has the highest IoU, with that IoU; "
    "prevalence = share of reference gap pixels (the PR-AUC of a random guess). From histograms "
    "of the probabilities (bins of 1/2048 by default) summed over the whole area of every site."
)
HEIGHT_DEFINITION = (
    "Canopy height error (methods that write canopy heights): error = predicted - reference "
    "height (DSM - DTM or the reference CHM), so a positive bias is a prediction too high; MAE, "
    "RMSE and bias over all valid pixels and by reference height class."
)


def layer_definitions(doc: dict[str, Any]) -> list[str]:
    """Definitions of the layer metrics that the report shows (pooled or for some site)."""
    scopes = [doc["aggregate"]["methods"], *(s["methods"] for s in doc["sites"].values())]
    out = []
    if any(_probability_rows(m) for m in scopes):
        out.append(PROBABILITY_DEFINITION)
    if any(_height_rows(m) for m in scopes):
        out.append(HEIGHT_DEFINITION)
    return out


def _probability_rows(methods: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in methods.items():
        for b in m["thresholds"]:
            pr = b.get("probability")
            if pr is None:
                continue
            rows.append(
                [
                    name,
                    threshold_key(b["threshold_m"]),
                    pr["pr_auc"],
                    pr["prevalence"],
                    pr["brier"],
                    pr["best_cut"],
                    pr["best_cut_iou"],
                    pr["iou_at_half"],
                    b["pixel"]["iou"],
                ]
            )
    return rows


PROBABILITY_HEADER = [
    "method",
    "threshold (m)",
    "PR-AUC",
    "prevalence",
    "Brier",
    "best cut",
    "IoU at best cut",
    "IoU at 0.5",
    "IoU of mask",
]
HEIGHT_HEADER = ["method", "reference height (m)", "pixels", "MAE (m)", "RMSE (m)", "bias (m)"]


def _section(d: Document, title: str, level: int, header: list[str], rows: list[list[Any]]) -> None:
    if rows:
        d.heading(title, level)
        d.table(header, rows)


def probability_section(d: Document, methods: dict[str, Any], title: str, level: int = 2) -> None:
    """Table of the probability metrics; nothing when no method has probabilities."""
    _section(d, title, level, PROBABILITY_HEADER, _probability_rows(methods))


def _height_rows(methods: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, m in methods.items():
        h = m.get("height_error")
        if h is None:
            continue
        rows.append({"method": name, "class_m": "all", **h["overall"]})
        rows += [{"method": name, **c} for c in h["by_class"]]
    return rows


def height_section(d: Document, methods: dict[str, Any], title: str, level: int = 2) -> None:
    """Table of canopy height errors; nothing when no method has canopy heights."""
    rows = [
        [r["method"], r["class_m"], r["pixels"], r["mae"], r["rmse"], r["bias"]]
        for r in _height_rows(methods)
    ]
    _section(d, title, level, HEIGHT_HEADER, rows)


def write_layer_csv(folder: Path, doc: dict[str, Any]) -> Path | None:
    """``height_error.csv`` (site x method x reference height class) when any method has heights."""
    scopes = [(site, s["methods"]) for site, s in doc["sites"].items()]
    scopes.append(("all", doc["aggregate"]["methods"]))
    rows = [{"site": site, **r} for site, methods in scopes for r in _height_rows(methods)]
    if not rows:
        return None
    return write_csv(folder / HEIGHT_CSV, rows, HEIGHT_CSV_COLUMNS)
