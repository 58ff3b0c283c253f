"""The cross-validation table: gap IoU per site, threshold and method, means and wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.io.files import atomic_write_text

MODEL, CLASSICAL, REF21 = "model", "classical", "ref21"
METHODS = (MODEL, CLASSICAL, REF21)


def crossval_table(
    tables: dict[str, dict[str, list[float]]], thresholds: list[float]
) -> dict[str, Any]:
    """Per-site IoU (``tables[site][method]``), the mean over sites, and the model's wins:
    cells where it is strictly above both classical methods."""
    sites = {s: {m: [float(v) for v in t[m]] for m in METHODS if m in t} for s, t in tables.items()}
    mean = {
        m: [float(np.mean([sites[s][m][k] for s in sites])) for k in range(len(thresholds))]
        for m in METHODS
        if all(m in t for t in sites.values())
    }
    cells = [(s, k) for s in sites for k in range(len(thresholds))]
    won = [
        (s, k)
        for s, k in cells
        if sites[s][MODEL][k] > max(sites[s][CLASSICAL][k], sites[s][REF21][k])
    ]
    mean_wins = [
        mean[MODEL][k] > max(mean[CLASSICAL][k], mean[REF21][k]) for k in range(len(thresholds))
    ]
    classical_vs_ref21 = [mean[CLASSICAL][k] >= mean[REF21][k] for k in range(len(thresholds))]
    return {
        "thresholds": thresholds,
        "sites": sites,
        "mean": mean,
        "wins": {
            "cells_won": len(won),
            "cells": len(cells),
            "lost": [f"{s} {thresholds[k]:g} m" for s, k in cells if (s, k) not in won],
            "mean_beats_both": mean_wins,
            "classical_mean_at_least_ref21": classical_vs_ref21,
        },
    }


def table_markdown(table: dict[str, Any]) -> str:
    """The table as Markdown: one row per site and method, then the means and the wins."""
    ts = table["thresholds"]
    head = "| site | method | " + " | ".join(f"{t:g} m" for t in ts) + " |"
    lines = [head, "|" + "---|" * (len(ts) + 2)]
    rows = [*table["sites"].items(), ("**mean**", table["mean"])]
    for site, methods in rows:
        for m in METHODS:
            if m not in methods:
                continue
            cells = []
            for k, v in enumerate(methods[m]):
                best = max(methods[x][k] for x in METHODS if x in methods)
                cells.append(f"**{v:.3f}**" if v == best else f"{v:.3f}")
            lines.append(f"| {site} | {m} | " + " | ".join(cells) + " |")
    w = table["wins"]
    lines += [
        "",
        f"Model strictly above both classical methods in {w['cells_won']} of {w['cells']} "
        "site-threshold cells; mean above both at "
        + ", ".join(
            f"{t:g} m: {'yes' if ok else 'no'}"
            for t, ok in zip(ts, w["mean_beats_both"], strict=True)
        )
        + ".",
    ]
    if w["lost"]:
        lines.append("Cells not won: " + ", ".join(w["lost"]) + ".")
    return "\n".join(lines) + "\n"


def write_table(out: Path, table: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """``crossval.json`` (table + config) and ``crossval.md`` in ``out``."""
    doc = {"format": "canopygaps-crossval", "format_version": 1, **table, "config": config}
    atomic_write_text(out / "crossval.json", json.dumps(doc, indent=2, default=str))
    atomic_write_text(out / "crossval.md", table_markdown(table))
    return {"json": str(out / "crossval.json"), "markdown": str(out / "crossval.md")}
