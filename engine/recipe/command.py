"""``canopygaps recipe`` and ``canopygaps crossval``.

recipe: (1) tune the adaptive classical method on the training pixels of the sites (or take its
defaults) -> ``classical.yaml``; (2) ``preprocess`` with feature channels built on that method
-> ``dataset/``; (3) ``train`` -> ``model.safetensors`` (``run/`` holds checkpoints and logs),
then set the closed-canopy guard (``openness_floor``) on that file when the config gives one;
(4) ``evaluate`` the model, the adaptive classical method and ref21 on the held-out sites ->
``report/``. A step whose product exists is skipped, so an interrupted recipe resumes (training
resumes from its last checkpoint).

crossval: the recipe once per fold site, trained without it and evaluated on it
(``fold-<site>/``), then one table (``crossval.json``, ``crossval.md``): gap IoU per site and
threshold for the model, the classical method and ref21, the mean over sites, and the cells the
model wins.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from engine.config.base import from_dict, to_dict
from engine.data.config import PreprocessConfig
from engine.data.preprocess import run_preprocess
from engine.errors import ConfigError
from engine.evaluation.command import run_evaluate
from engine.evaluation.config import EvaluateConfig
from engine.events import NullReporter, Reporter
from engine.features.config import AdaptiveParams
from engine.io.files import atomic_write_text, output_path
from engine.recipe.config import CrossvalConfig, HeldOutSite, RecipeConfig
from engine.recipe.table import crossval_table, write_table
from engine.recipe.tuning import tune_classical

MODEL = "model.safetensors"


def _dataset_config(config: RecipeConfig, out: Path, params: AdaptiveParams) -> PreprocessConfig:
    data = {**config.dataset, "output": str(out / "dataset"), "thresholds": config.thresholds}
    data["sites"] = [to_dict(s) for s in config.sites]
    features = dict(data.pop("features", None) or {})
    features.update(adaptive=to_dict(params), thresholds=list(config.thresholds))
    data["features"] = features
    return from_dict(PreprocessConfig, data)


def _classical(config: RecipeConfig, out: Path, reporter: Reporter) -> AdaptiveParams:
    path = out / "classical.yaml"
    if path.is_file():
        reporter.log(f"Using the classical parameters in {path}.")
        return from_dict(AdaptiveParams, yaml.safe_load(path.read_text())["adaptive"])
    if config.tune:
        plain = _dataset_config(config, out, AdaptiveParams())
        params, scores = tune_classical(plain, config.thresholds, reporter)
    else:
        params, scores = AdaptiveParams(), {"tuned": False}
    text = yaml.safe_dump({"adaptive": to_dict(params), "tuning": scores}, sort_keys=False)
    atomic_write_text(path, text)
    return params


def _train(config: RecipeConfig, out: Path, reporter: Reporter) -> Path:
    from engine.training.command import run_train
    from engine.training.config import TrainConfig

    model = out / MODEL
    if model.is_file():
        reporter.log(f"Using the trained model {model}.")
        return model
    data = {
        "resume": "auto",
        **config.train,
        "dataset": str(out / "dataset"),
        "output": str(model),
        "run_dir": str(out / "run"),
    }
    run_train(from_dict(TrainConfig, data), reporter)
    return model


def _guard(config: RecipeConfig, out: Path, model: Path, reporter: Reporter) -> None:
    """Set ``config.openness_floor`` on a ground_residual ``model``; a changed model makes the
    evaluation in ``report/`` stale, so it is removed (the recipe wrote it)."""
    from engine.models.modelfile import read_description, update_head_args

    floor = config.openness_floor
    args = read_description(model).architecture.get("args", {})
    if floor is None or args.get("head") != "ground_residual":
        return
    if args.get("head_args", {}).get("openness_floor") == floor:
        return
    update_head_args(model, openness_floor=floor)
    reporter.log(f"Closed-canopy guard of {model.name}: openness floor {floor}.")
    report = out / "report"
    if report.is_dir():
        shutil.rmtree(report)


def _evaluate(
    config: RecipeConfig, out: Path, model: Path, params: AdaptiveParams, reporter: Reporter
) -> dict[str, Any]:
    report = out / "report"
    if (report / "metrics.json").is_file():
        reporter.log(f"Using the evaluation in {report}.")
        return dict(json.loads((report / "metrics.json").read_text()))
    data = {
        **config.evaluation,
        "sites": [s.evaluation_site() for s in config.held_out],
        "models": [str(model)],
        "classical": True,
        "adaptive": to_dict(params),
        "thresholds": list(config.thresholds),
        "output": str(report),
    }
    run_evaluate(from_dict(EvaluateConfig, data), reporter)
    return dict(json.loads((report / "metrics.json").read_text()))


def run_recipe(config: RecipeConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the recipe into ``config.output`` (resuming); return its products and IoU table."""
    reporter = reporter or NullReporter()
    out = output_path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "recipe.yaml")
    params = _classical(config, out, reporter.sub(0.0, 0.1, "tune classical"))
    if not (out / "dataset" / "manifest.json").is_file():
        run_preprocess(_dataset_config(config, out, params), reporter.sub(0.1, 0.2, "preprocess"))
    model = _train(config, out, reporter.sub(0.2, 0.9, "train"))
    _guard(config, out, model, reporter)
    result: dict[str, Any] = {
        "output": str(out),
        "model": str(model),
        "classical": str(out / "classical.yaml"),
    }
    if config.held_out:
        doc = _evaluate(config, out, model, params, reporter.sub(0.9, 1.0, "evaluate"))
        result["report"] = str(out / "report")
        result["iou"] = iou_table(doc)
    reporter.progress(1.0, "recipe")
    return result


def iou_table(doc: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """``{site: {method: [IoU per threshold]}}`` from an evaluation's metrics.json."""
    return {
        site: {
            method: [float(b["pixel"]["iou"]) for b in m["thresholds"]]
            for method, m in body["methods"].items()
        }
        for site, body in doc["sites"].items()
    }


def run_crossval(config: CrossvalConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Leave-one-site-out cross-validation of the recipe (see the module docstring)."""
    reporter = reporter or NullReporter()
    out = output_path(config.output)
    folds = config.folds or [s.name for s in config.sites]
    tables: dict[str, dict[str, list[float]]] = {}
    # the crossval config's recipe settings, each of them (a new one too), for every fold
    recipe = RecipeConfig(
        **{f.name: getattr(config, f.name) for f in dataclasses.fields(RecipeConfig)}
    )
    for i, name in enumerate(folds):
        held = next(s for s in config.sites if s.name == name)
        fold = dataclasses.replace(
            recipe,
            output=out / f"fold-{name}",
            sites=[s for s in config.sites if s.name != name],
            held_out=[_held_out(held)],
        )
        reporter.log(f"Fold {i + 1}/{len(folds)}: trained without '{name}', evaluated on it.")
        result = run_recipe(fold, reporter.sub(i / len(folds), (i + 1) / len(folds), name))
        tables[name] = result["iou"][name]
    table = crossval_table(tables, list(config.thresholds))
    paths = write_table(out, table, to_dict(config))
    reporter.progress(1.0, "crossval")
    return {"output": str(out), **paths, "mean": table["mean"], "wins": table["wins"]}


def _held_out(site: Any) -> HeldOutSite:
    if site.dsm is None:
        raise ConfigError(f"Fold site '{site.name}' has no DSM to evaluate on.")
    return HeldOutSite(
        name=site.name, dsm=site.dsm, reference_dtm=site.dtm, reference_chm=site.chm, crs=site.crs
    )


__all__ = ["iou_table", "run_crossval", "run_recipe"]
