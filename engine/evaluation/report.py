"""Report writers: metrics.json (versioned), metrics.csv and report.md / report.html.

The text reports are built once as a list of blocks (headings, paragraphs, tables, images) and
rendered to Markdown and to a simple standalone HTML page, so both always say the same thing.
Everything is written through :mod:`engine.io.files` atomic helpers.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.io.files import atomic_write_text

METRICS_FORMAT = "canopygaps-metrics"
METRICS_FORMAT_VERSION = 2
"""2 added per band ``probability`` (PR-AUC, Brier score, IoU-optimal cut) and per method
``height_error`` (canopy height MAE, RMSE, bias by reference height class); null when the method
has no such layer. Every key of version 1 is unchanged."""

PIXEL_COLUMNS = ("tp", "fp", "fn", "tn", "iou", "f1", "precision", "recall", "accuracy", "kappa")
PROBABILITY_COLUMNS = ("pr_auc", "brier", "best_cut", "best_cut_iou")
HEIGHT_COLUMNS = ("mae", "rmse", "bias")

CSV_COLUMNS = [
    "site",
    "method",
    "threshold_m",
    *PIXEL_COLUMNS,
    "objects_pred",
    "objects_ref",
    "objects_matched",
    "object_precision",
    "object_recall",
    "object_f1",
    "lambda_pred",
    "lambda_ref",
    "gap_fraction_cells",
    "gap_fraction_r2",
    "gap_fraction_rmse",
    "gap_fraction_bias",
    "nesting_violation_rate",
    *PROBABILITY_COLUMNS,
    *(f"height_{k}" for k in HEIGHT_COLUMNS),
]


def clean_json(value: Any) -> Any:
    """Recursively replace NaN/inf by None and numpy scalars by Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Strict JSON (no NaN), indented, written atomically."""
    return atomic_write_text(path, json.dumps(clean_json(data), indent=2, allow_nan=False) + "\n")


def flat_row(site: str, method: dict[str, Any], band: dict[str, Any]) -> dict[str, Any]:
    """One CSV row from a method's dict and one of its threshold dicts."""
    px, obj = band["pixel"], band["objects"]["all"]
    gf, sd = band["gap_fraction"], band["size_distribution"]
    return {
        "site": site,
        "method": method["method"],
        "threshold_m": band["threshold_m"],
        **{k: px[k] for k in PIXEL_COLUMNS},
        "objects_pred": obj["n_pred"],
        "objects_ref": obj["n_ref"],
        "objects_matched": obj["matched"],
        "object_precision": obj["precision"],
        "object_recall": obj["recall"],
        "object_f1": obj["f1"],
        "lambda_pred": sd["pred"]["lambda"],
        "lambda_ref": sd["ref"]["lambda"],
        "gap_fraction_cells": gf["cells"],
        "gap_fraction_r2": gf["r2"],
        "gap_fraction_rmse": gf["rmse"],
        "gap_fraction_bias": gf["bias"],
        "nesting_violation_rate": method["nesting"]["rate"],
        **{k: (band.get("probability") or {}).get(k) for k in PROBABILITY_COLUMNS},
        **{f"height_{k}": _overall(method).get(k) for k in HEIGHT_COLUMNS},
    }


def _overall(method: dict[str, Any]) -> dict[str, Any]:
    heights = method.get("height_error")
    return heights["overall"] if heights else {}


def write_csv(
    path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = CSV_COLUMNS
) -> Path:
    """CSV with ``columns`` (default :data:`CSV_COLUMNS`); undefined values are empty cells."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def fmt(value: Any, digits: int = 3) -> str:
    """Table cell text: numbers rounded, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


@dataclass
class Document:
    """Blocks of a report: ``(kind, payload)`` with kinds h1/h2/h3, p, list, table, img."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append((f"h{level}", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("list", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [[fmt(c) for c in r] for r in rows])))

    def image(self, rel_path: str, caption: str) -> None:
        self.blocks.append(("img", (rel_path, caption)))

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown."""
        out = [f"# {self.title}", ""]
        for kind, payload in self.blocks:
            if kind.startswith("h"):
                out += ["#" * int(kind[1]) + " " + payload, ""]
            elif kind == "p":
                out += [payload, ""]
            elif kind == "list":
                out += [f"- {item}" for item in payload] + [""]
            elif kind == "table":
                header, rows = payload
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                rel, caption = payload
                out += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        """A standalone HTML page (inline CSS, images by relative path)."""
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for kind, payload in self.blocks:
            if kind.startswith("h"):
                body.append(f"<{kind}>{e(payload)}</{kind}>")
            elif kind == "p":
                body.append(f"<p>{e(payload)}</p>")
            elif kind == "list":
                body.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in payload) + "</ul>")
            elif kind == "table":
                header, rows = payload
                head = "".join(f"<th>{e(h)}</th>" for h in header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "img":
                rel, caption = payload
                body.append(
                    f'<figure><img src="{e(rel)}" alt="{e(caption)}"><figcaption>{e(caption)}'
                    "</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
            "padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}"
        )
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{e(self.title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )
