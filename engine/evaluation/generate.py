"""Predictions the ``evaluate`` command makes itself: the requested model files and the
classical baseline (adaptive, and the fixed ``ref21`` settings) run on each site's DSM.

They run through the engine's command table (``infer`` / ``classical``) into the temporary
report folder, asking for the probability and height layers each command offers.

With ``resample`` on, a DSM whose pixel size is not the (first) model's is resampled once onto
the model's pixel size (:func:`method_input`) and *every* method runs on that copy, so all are
scored against the same labels on the same grid (the classical methods on the native grid and
the model on the resampled one would be scored against different labels).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.evaluation.config import EvaluateConfig, SiteConfig
from engine.evaluation.layers import layer_requests, written_layers
from engine.evaluation.naming import model_labels, slug
from engine.evaluation.site import Prediction, open_prediction
from engine.events import Reporter
from engine.io.grid import RasterInfo

CLASSICAL = "classical"
REF21_LABEL = "ref21"
PIXEL_TOLERANCE = 0.05
"""Relative pixel-size difference below which a DSM is used as it is (``infer``'s default)."""
BAND_ROWS = 512
"""Rows of the resampled DSM written at a time (:func:`write_resampled`)."""


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

    dsm = method_input(config, site, folder / "inputs", reporter.sub(0.0, 0.05, "resample"))
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    if config.classical:
        jobs.append((CLASSICAL, "classical", {"adaptive": to_dict(config.adaptive)}))
        jobs.append((REF21_LABEL, "classical", dict(REF21)))
    for label, model in zip(model_labels(config.models), config.models, strict=True):
        jobs.append((label, "infer", {"model": str(model), "resample": config.resample}))
    written: dict[str, tuple[Path, dict[str, Path]]] = {}
    for i, (label, command, extra) in enumerate(jobs):
        out = folder / "predictions" / slug(site.name) / f"{slug(label)}.tif"
        params: dict[str, Any] = {"dsm": str(dsm), "output": str(out), **extra}
        if thresholds:
            params["thresholds"] = list(thresholds)
        reporter.log(f"Site '{site.name}': running {label}.")
        start, end = (0.05 + 0.95 * k / len(jobs) for k in (i, i + 1))
        sub = reporter.sub(start, end, f"{label} on {site.name}")
        written[label] = (out, run_command(command, params, site, sub))
    shutil.rmtree(folder / "inputs", ignore_errors=True)
    return written


def method_input(
    config: EvaluateConfig, site: SiteConfig, folder: Path, reporter: Reporter
) -> Path:
    """The DSM every method runs on: the site's, or with ``resample`` on and a first model of
    another pixel size, that DSM resampled onto the model's pixel size (bilinear, as ``infer``
    reads it; written window by window into ``folder``)."""
    from engine.inference.readers import check_dsm
    from engine.models.modelfile import read_description

    assert site.dsm is not None
    if not (config.resample and config.models):
        return Path(site.dsm)
    pixel = read_description(config.models[0]).pixel_size
    _, grid = check_dsm(Path(site.dsm), pixel, PIXEL_TOLERANCE, True)
    if grid is None:
        return Path(site.dsm)
    reporter.log(f"Site '{site.name}': every method runs on its DSM resampled to {pixel:g} m.")
    out = folder / slug(site.name) / "dsm.tif"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_resampled(Path(site.dsm), grid, out, reporter)
    return out


def write_resampled(path: Path, grid: RasterInfo, out: Path, reporter: Reporter) -> None:
    """The one-band raster ``path`` resampled onto ``grid`` (bilinear; NaN nodata) into
    ``out``, by bands of rows (memory does not grow with the raster)."""
    from engine.inference.readers import ResampledReader
    from engine.io.geotiff import RasterWriter

    reader = ResampledReader(path, grid)
    try:
        with RasterWriter(out, grid, nodata=float("nan")) as writer:
            for row in range(0, grid.height, BAND_ROWS):
                rows = min(BAND_ROWS, grid.height - row)
                values, _ = reader.read_window(row, 0, rows, grid.width)
                writer.write_window(values, row, 0)
                reporter.progress((row + rows) / grid.height, "resample DSM")
    finally:
        reader.close()


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
