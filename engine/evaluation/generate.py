"""Predictions the ``evaluate`` command makes itself: the requested model files and the
classical baseline (adaptive, and the fixed ``ref21`` settings) run on each site's DSM.

They run through the engine's command table (``infer`` / ``classical``) into the temporary
report folder, asking for the probability and height layers each command offers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.evaluation.config import EvaluateConfig, SiteConfig
from engine.evaluation.layers import layer_requests, written_layers
from engine.evaluation.naming import model_labels, slug
from engine.evaluation.site import Prediction, open_prediction
from engine.events import Reporter

CLASSICAL = "classical"
REF21_LABEL = "ref21"


def check_models(config: EvaluateConfig) -> None:
    """A clear error for a missing, folder, corrupt or foreign model file (nothing written yet)."""
    from engine.models.modelfile import read_description

    for m in config.models:
        read_description(m)


def predict_sites(
    config: EvaluateConfig, thresholds: list[float] | None, folder: Path, reporter: Reporter
) -> dict[str, dict[str, Prediction]]:
    """Site name -> method label -> the opened prediction of every generated method (the
    first 40 % of the progress)."""
    out: dict[str, dict[str, Prediction]] = {}
    n = len(config.sites)
    for i, site in enumerate(config.sites):
        sub = reporter.sub(0.4 * i / n, 0.4 * (i + 1) / n, "predict")
        out[site.name] = {}
        for label, (path, extra) in generate(config, site, thresholds, folder, sub).items():
            out[site.name][label] = open_prediction(
                label, path, site.crs, extra.get("probabilities"), extra.get("heights")
            )
    return out


def generate(
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
        written[label] = (out, run_command(command, params, site, sub))
    return written


def run_command(
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
