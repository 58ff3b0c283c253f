"""Publish the default model and its model card (used by ``make train-default``).

``model_card.py publish TRAINED DEST``: write DEST/default.safetensors (+ .json), the trained
weights stored as float16 (half the size; loading casts them back to float32).
``model_card.py card DEST/default.safetensors METRICS``: add the held-out metrics (metrics.json of
``engine evaluate`` run on the published file) to its JSON description and write
DEST/MODEL_CARD.md: data, thresholds, expected pixel size, held-out metrics per threshold next to
the classical baseline on the same pixels, and the model's known limits.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from engine.io.files import atomic_write_text
from engine.models.modelfile import load_model, save_model

KEYS = ("iou", "f1", "precision", "recall", "kappa")


def _table(aggregate: dict[str, Any]) -> tuple[dict[str, dict[str, dict[str, float]]], str]:
    """Per method and threshold, the pixel metrics; plus a Markdown table."""
    methods: dict[str, dict[str, dict[str, float]]] = {}
    for name, block in aggregate["methods"].items():
        label = "model" if name != "classical" else "classical"
        methods[label] = {
            f"{t['threshold_m']:g}": {k: t["pixel"][k] for k in KEYS} for t in block["thresholds"]
        }
    thresholds = list(next(iter(methods.values())))
    heads = " | ".join(f"{m} {k}" for m in methods for k in ("IoU", "F1"))
    lines = [f"| threshold | {heads} |"]
    lines.append("|---" * (1 + 2 * len(methods)) + "|")
    for t in thresholds:
        cells = [f"{methods[m][t][k]:.3f}" for m in methods for k in ("iou", "f1")]
        lines.append(f"| {t} m | " + " | ".join(cells) + " |")
    return methods, "\n".join(lines)


def publish(trained: str, dest: str) -> None:
    """Write DEST/default.safetensors (+ .json) with float16 weights."""
    model, desc = load_model(trained)
    save_model(Path(dest) / "default.safetensors", model, desc, weights_dtype="float16")


def card(model_path: str, metrics_path: str) -> None:
    """Add held-out metrics to the published model's description; write MODEL_CARD.md."""
    metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    held_out, table = _table(metrics["aggregate"])
    model, desc = load_model(model_path)
    desc = dataclasses.replace(
        desc, metrics={**desc.metrics, "holdout_harv": held_out, "holdout_site": "HARV east 30 %"}
    )
    out = Path(model_path).parent
    save_model(out / "default.safetensors", model, desc, weights_dtype="float16")
    data = desc.training.get("data", desc.training)
    card = f"""# Default canopy gap model

`default.safetensors` (weights and JSON description in one file; `default.json` repeats the
description). Rebuild it with `make train-default` (needs `../shared/data`).

- Architecture: `{desc.architecture.get("name")}` {json.dumps(desc.architecture.get("args", {}))}
- Output: `{desc.output_kind}` head, gap masks nested across thresholds by construction.
- Thresholds: {", ".join(f"{t:g}" for t in desc.thresholds)} m (gap where canopy height <= t).
- Expected input: a single-band DSM in a projected CRS in metres, pixel size {desc.pixel_size} m
  (other pixel sizes: `resample: true`); tiles of {desc.tile_size} px in training.
- Normalisation: {json.dumps(desc.normalisation)}.

## Training data
Real sites from `../shared/data` (recipe: `resources/configs/default-dataset.yaml`), all at 1 m:
NEON Harvard Forest (HARV, lidar DSM, labels from DSM - DTM, western 70 % only), lidR
Topography (lidar DSM and DTM, hilly Quebec), and the CHM-only sites lidR MixedConifer and
ForestGapR Ducke / Cauaxi 2012 / Cauaxi 2014 with synthetic terrain added under the canopy
(DSM = CHM + terrain) so the model learns to separate canopy from ground.
Training summary: {json.dumps(data)[:600]}

## Held-out accuracy (HARV east 30 %, never seen in training or model selection)
Pixel metrics from confusion counts summed over the block; labels (DSM - DTM) <= t. The
classical baseline is DSM minus a smoothed local minimum (30 m window, 10 m smoothing) on the
same pixels.

{table}

Full report: `make train-default` writes `build/default-model/holdout-report/report.md`.

## Known limits
- Trained on about 1 km² of temperate forest plus small tropical and conifer CHMs: expect lower
  accuracy in other forest types; fine-tune with the train algorithm on local data.
- Needs a DSM where some ground is visible within each 64 m block (the normalisation uses a
  local low percentile); under fully closed canopy the low surface sits on the canopy and
  low-threshold gaps are under-detected.
- Lidar DSMs at 1 m; photogrammetric DSMs (smoother, no ground returns under canopy) were not in
  the training data.
"""
    atomic_write_text(out / "MODEL_CARD.md", card)
    print(table)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("publish", "card"):
        raise SystemExit(__doc__)
    (publish if sys.argv[1] == "publish" else card)(*sys.argv[2:])
