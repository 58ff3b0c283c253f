"""Choose the closed-canopy guard of the ground_residual model by leave-one-site-out.

For every fold of a finished ``make crossval`` (``build/crossval/fold-<site>``), copy the fold's
model with its guard's openness floor set to each candidate, evaluate the copy on the fold's
left-out site with the fold's own evaluate settings, and print gap IoU per site and the mean over
sites per floor. The floor with the best mean (averaged over thresholds) goes into
``resources/configs/{crossval,default-recipe}.yaml`` as ``openness_floor``; the models were
trained once, so only the guard is chosen here, never on the site being scored.

    .venv/bin/python scripts/openness_guard_study.py [build/crossval] [0,0.05,0.1,0.2,0.3,0.5]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from engine.api import run
from engine.models.modelfile import update_head_args


def evaluate_fold(fold: Path, floor: float | list[float], work: Path) -> list[float]:
    """Gap IoU per threshold of ``fold``'s model with guard ``floor`` on its left-out site."""
    label = "-".join(f"{f:g}" for f in floor) if isinstance(floor, list) else f"{floor:g}"
    target = work / fold.name / f"floor-{label}"
    target.mkdir(parents=True, exist_ok=True)
    model = target / "model.safetensors"
    shutil.copyfile(fold / "model.safetensors", model)
    update_head_args(model, openness_floor=floor)
    settings = json.loads((fold / "report" / "metrics.json").read_text())["settings"]
    settings.update(
        models=[str(model)], classical=False, figures=False, output=str(target / "report")
    )
    settings["overwrite"] = True
    run("evaluate", settings)
    doc = json.loads((target / "report" / "metrics.json").read_text())
    (body,) = doc["sites"].values()
    (method,) = [m for k, m in body["methods"].items() if k not in ("classical", "ref21")]
    return [float(b["pixel"]["iou"]) for b in method["thresholds"]]


def per_threshold(table: dict[float, dict[str, list[float]]]) -> list[float]:
    """Per threshold, the floor with the best mean IoU over sites (ties: the larger floor)."""
    means = {f: np.mean(list(sites.values()), axis=0) for f, sites in table.items()}
    n = len(next(iter(means.values())))
    return [max(means, key=lambda f: (round(float(means[f][k]), 6), f)) for k in range(n)]


def _line(label: str, sites: dict[str, list[float]]) -> str:
    mean = np.mean(list(sites.values()), axis=0)
    cells = " ".join(f"{s}:{'/'.join(f'{v:.3f}' for v in iou)}" for s, iou in sites.items())
    return f"{label}: mean {'/'.join(f'{v:.4f}' for v in mean)} ({mean.mean():.4f}) {cells}"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "build/crossval")
    default = "0,0.01,0.02,0.05,0.1,0.2,0.3,0.5"
    floors = [float(f) for f in (sys.argv[2] if len(sys.argv) > 2 else default).split(",")]
    work = root / "guard-study"
    folds = sorted(p for p in root.glob("fold-*") if (p / "model.safetensors").is_file())
    table = {f: {p.name[5:]: evaluate_fold(p, f, work) for p in folds} for f in floors}
    for floor, sites in table.items():
        print(_line(f"floor {floor:g}", sites))
    chosen = per_threshold(table)
    combined = {p.name[5:]: evaluate_fold(p, chosen, work) for p in folds}
    print(_line(f"per threshold {chosen}", combined))
    doc: dict[str, object] = {f"{f:g}": s for f, s in table.items()}
    doc["per_threshold"] = {"floors": chosen, "sites": combined}
    (work / "study.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
