"""Publish the default model and its model card (used by ``make train-default``).

``model_card.py publish RECIPE_DIR DEST``: write DEST/default.safetensors (+ .json), the
recipe's trained weights stored as float16 (half the size; loading casts them back).
``model_card.py card DEST/default.safetensors METRICS RECIPE_DIR [CROSSVAL_JSON]``: add the
held-out metrics (metrics.json of ``engine evaluate`` run on the *published* file: model,
classical, ref21) and the leave-one-site-out summary to the model's description and write
DEST/MODEL_CARD.md with both tables, losses included.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from engine.io.files import atomic_write_text
from engine.models.modelfile import load_model, save_model
from engine.recipe.table import CLASSICAL, MODEL, REF21, crossval_table, table_markdown

KEYS = ("iou", "f1", "precision", "recall", "kappa")


def _methods(aggregate: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method (model, classical, ref21) and threshold, the pixel metrics."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, block in aggregate["methods"].items():
        label = name if name in ("classical", "ref21") else "model"
        out[label] = {
            f"{t['threshold_m']:g}": {k: t["pixel"][k] for k in KEYS} for t in block["thresholds"]
        }
    return out


def holdout_markdown(methods: dict[str, dict[str, dict[str, float]]]) -> str:
    """IoU and F1 per threshold and method, the best IoU in bold."""
    order = [m for m in ("model", "classical", "ref21") if m in methods]
    lines = ["| threshold | " + " | ".join(f"{m} IoU | {m} F1" for m in order) + " |"]
    lines.append("|---" * (1 + 2 * len(order)) + "|")
    for t in methods["model"]:
        best = max(methods[m][t]["iou"] for m in order)
        cells = []
        for m in order:
            iou = f"{methods[m][t]['iou']:.3f}"
            cells += [f"**{iou}**" if methods[m][t]["iou"] == best else iou]
            cells += [f"{methods[m][t]['f1']:.3f}"]
        lines.append(f"| {t} m | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def publish(recipe_dir: str, dest: str) -> None:
    """Write DEST/default.safetensors (+ .json) with float16 weights."""
    model, desc = load_model(Path(recipe_dir) / "model.safetensors")
    save_model(Path(dest) / "default.safetensors", model, desc, weights_dtype="float16")


def _crossval(path: str | None) -> tuple[dict[str, Any] | None, str]:
    if not path or not Path(path).is_file():
        return None, "Not run for this file: `make crossval` writes `build/crossval/crossval.md`."
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    table = crossval_table(doc["sites"], doc["thresholds"])
    return table, table_markdown(table)


def _guard_study(crossval: str | None) -> str:
    """Mean IoU per candidate floor from ``scripts/openness_guard_study.py``'s study.json."""
    path = Path(crossval).parent / "guard-study" / "study.json" if crossval else None
    if path is None or not path.is_file():
        return "Not run for this file: `scripts/openness_guard_study.py` after `make crossval`."
    study = json.loads(path.read_text(encoding="utf-8"))
    lines = ["| openness floor | mean IoU per threshold | mean over thresholds |", "|---|---|---|"]
    combined = study.pop("per_threshold", None)
    rows_by_label = {f"{float(floor):g}": sites for floor, sites in study.items()}
    if combined is not None:
        label = "per threshold: " + " / ".join(f"{f:g}" for f in combined["floors"])
        rows_by_label[f"**{label}** (shipped)"] = combined["sites"]
    for label, sites in rows_by_label.items():
        rows = list(sites.values())
        mean = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        cells = " / ".join(f"{v:.3f}" for v in mean)
        lines.append(f"| {label} | {cells} | {sum(mean) / len(mean):.4f} |")
    return "\n".join(lines)


def floor_text(floor: float | list[float] | None, thresholds: list[float]) -> str:
    """The guard's floor in words: one value, or one per threshold."""
    if not isinstance(floor, list):
        return f"{floor}"
    pairs = ", ".join(f"{t:g} m: {f:g}" for t, f in zip(thresholds, floor, strict=True))
    return f"the threshold's floor ({pairs}; 0: never off)"


def _verdict(cv: dict[str, Any] | None, margin: float = 0.001) -> str:
    """Honest sentences on the model against the classical methods on unseen sites."""
    if cv is None:
        return ""
    ts, mean = cv["thresholds"], cv["mean"]
    clear = sum(
        b[MODEL][k] - max(b[CLASSICAL][k], b[REF21][k]) > margin
        for b in cv["sites"].values()
        for k in range(len(ts))
    )
    gain = [mean[MODEL][k] - mean[CLASSICAL][k] for k in range(len(ts))]
    better = [f"{t:g} m" for k, t in enumerate(ts) if gain[k] > 0]
    worse = [f"{t:g} m" for k, t in enumerate(ts) if gain[k] < 0]
    text = (
        f"On sites it never saw, the model is strictly above both classical methods in "
        f"{cv['wins']['cells_won']} of {cv['wins']['cells']} site-threshold cells, {clear} of them "
        f"by more than {margin} IoU; its mean is above the adaptive classical method's at "
        f"{', '.join(better) or 'no threshold'} and below it at {', '.join(worse) or 'none'} "
        f"(model minus classical: {', '.join(f'{g:+.4f}' for g in gain)} IoU at "
        f"{', '.join(f'{t:g}' for t in ts)} m)."
    )
    if worse:
        text += (
            " For a forest with no training labels, the `classical` command (adaptive method) is "
            f"therefore at least as good as this model at {', '.join(worse)}."
        )
    elif max(gain) < 0.01:
        text += (
            " The margins are small: on a forest without training labels expect about the "
            "adaptive classical method's accuracy (the model starts from its decision), a little "
            "better where the canopy is open."
        )
    return text


def card(model_path: str, metrics_path: str, recipe_dir: str, crossval: str | None = None) -> None:
    """Add held-out and cross-validation metrics to the description; write MODEL_CARD.md."""
    metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    held_out = _methods(metrics["aggregate"])
    cv, cv_md = _crossval(crossval)
    recipe = yaml.safe_load((Path(recipe_dir) / "recipe.yaml").read_text(encoding="utf-8"))
    classical = yaml.safe_load((Path(recipe_dir) / "classical.yaml").read_text(encoding="utf-8"))
    model, desc = load_model(model_path)
    extra = {"holdout_harv": held_out, "holdout_site": "HARV east 30 %"}
    if cv is not None:
        extra["crossval"] = {"mean": cv["mean"], "wins": cv["wins"], "thresholds": cv["thresholds"]}
    desc = dataclasses.replace(desc, metrics={**desc.metrics, **extra})
    out = Path(model_path).parent
    save_model(out / "default.safetensors", model, desc, weights_dtype="float16")
    text = CARD.format(
        architecture=json.dumps(desc.architecture.get("args", {})),
        name=desc.architecture.get("name"),
        thresholds=", ".join(f"{t:g}" for t in desc.thresholds),
        pixel=desc.pixel_size,
        features=json.dumps({k: v for k, v in desc.features.items() if k != "adaptive"}),
        adaptive=json.dumps(classical["adaptive"]),
        sites=", ".join(s["name"] for s in recipe["sites"]),
        train=json.dumps(recipe["train"]),
        dataset=json.dumps(recipe["dataset"]),
        holdout=holdout_markdown(held_out),
        crossval=cv_md,
        verdict=_verdict(cv),
        guard=_guard_study(crossval),
        floor=floor_text(
            desc.architecture.get("args", {}).get("head_args", {}).get("openness_floor"),
            list(desc.thresholds),
        ),
    )
    atomic_write_text(out / "MODEL_CARD.md", text)
    print(holdout_markdown(held_out))


CARD = """# Default canopy gap model

`default.safetensors` (weights stored as float16, JSON description in the file header;
`default.json` repeats the description). Rebuild it with `make train-default` (needs
`../shared/data`; recipe `resources/configs/default-recipe.yaml`, driver
`scripts/train_default.sh`), and its cross-validation with `make crossval`
(`resources/configs/crossval.yaml`).

- Architecture: `{name}` {architecture}: a U-Net fed feature channels (below) whose
  `ground_residual` head adds bounded, learned corrections (zero at initialisation) to the
  adaptive classical method's decision at each threshold: untrained, the model *is* the
  classical method. Closed-canopy guard: where the forest's openness (share of open ground
  within 82 m) is below {floor} the corrections are off, full from twice that; the floor was
  chosen by leave-one-site-out (below). It also outputs a canopy height (`infer --heights`).
- Thresholds: {thresholds} m (gap where canopy height <= t). Only these thresholds.
- Expected input: a single-band DSM in a projected CRS in metres, pixel size {pixel} m
  (other pixel sizes: `resample: true`), lidar-like (ground visible in gaps).
- Feature channels (engine.features): {features}, plus openness and the adaptive method's
  height above ground per threshold, its parameters tuned on the training pixels:
  {adaptive}.
- Training: {train}.
- Dataset: {dataset}.

## Training data
The seven shared lidar sites with a DTM ({sites}), labels from DSM - DTM, resampled to 1 m;
HARV's eastern 30 % is held out (never seen by tuning, training or checkpoint selection).
Terrain copies put each site's real DSM and DTM on a tilted, bent surface (slopes up to 40
degrees) for the training split.

## Held-out accuracy (HARV east 30 %, 324 x 898 m)
Pixel IoU/F1 from confusion counts summed over the block; labels (DSM - DTM) <= t; the
published float16 file run through `engine infer`. `classical` is the adaptive classical method
with the tuned parameters above, `ref21` the two-line filter `uniform(minimum(dsm, 21 m), 21 m)`.

{holdout}

## Leave-one-site-out cross-validation
For each site: tune the classical method and train on the six others (the same schedule as
this file: `resources/configs/crossval.yaml`), evaluate on it. Gap IoU per site and
threshold, the best in bold; losses included. The 2 m Quebec site is read onto 1 m pixels once
and every method runs on that copy (evaluate's `resample`), so all three are scored against
the same labels on the same grid.

{crossval}

{verdict}

## Closed-canopy guard, chosen by leave-one-site-out
The cross-validation's fold models were trained once (guard floor 0, the 1st percentile of the
training openness); `scripts/openness_guard_study.py` then sets each candidate floor on every
fold's model and scores it on that fold's left-out site. Mean gap IoU over the seven left-out
sites (2 / 5 / 10 / 15 / 20 m). Per threshold, the floor with the best mean at that threshold
is shipped (ties: the larger, more cautious one); that combination is scored as a whole (last
row; the head keeps the masks nested across thresholds) and the table above is measured with
it:

{guard}

The floors are chosen on the same left-out scores the table above reports (no second, nested
level of cross-validation), so its means are slightly optimistic: 8 candidates per threshold.

## Known limits
- Seven sites, about 2.5 km² of lidar: temperate broadleaf (HARV), hilly mixed (Quebec),
  steep closed conifer (New Zealand), open woodland (Hawaii), second-growth conifer (British
  Columbia), open pine (Tahoe, Florida). Boreal and tropical forests are not in it.
- The corrections are small by design: the model cannot find gaps the classical method misses
  by more than a few metres of height. Under near-gapless closed canopy it returns the
  classical answer at the thresholds whose guard floor is above 0.
- Lidar DSMs at 1 m; photogrammetric DSMs (smoother, no ground under canopy) were not in the
  training data.
"""


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] not in ("publish", "card"):
        raise SystemExit(__doc__)
    (publish if sys.argv[1] == "publish" else card)(*sys.argv[2:])
