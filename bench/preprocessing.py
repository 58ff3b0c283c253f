"""Preprocessing speed: label generation, tiling and the whole ``engine preprocess`` command.

Inputs are the demo scene's CHM and DSM (``engine synth``), mirror-tiled in memory up to each
size of ``label_sizes``. Figures (raster Mpx / seconds, median of several runs):

* ``labels``: :func:`engine.data.labels.gap_masks` at the 5 default thresholds (ForestGapR
  rule: ``CHM <= t``, 8-connected components, nested; no size filter);
* ``labels_min_area``: the same with a 10 m2 minimum gap area (component sizes and relabelling);
* ``tiling``: what ``preprocess`` does per site after labelling: low surface
  (:func:`~engine.data.normalise.low_surface_from_array`), :func:`~engine.data.tiling.plan_tiles`
  and, for every tile, :func:`~engine.data.tiling.cut` of DSM, valid mask, labels and CHM and
  :func:`~engine.data.normalise.normalise_window` (no file writing);
* ``features`` / ``adaptive_heights``: the model's feature channels
  (:meth:`engine.features.spec.FeatureSpec.compute`) and the adaptive classical method's heights
  on the whole array (the filters alone);
* ``preprocess_command``: ``engine preprocess`` end to end on the demo scene files (read,
  label, tile, split, write the ``.npy`` arrays and manifest).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import numpy as np

from bench import workloads
from bench.common import Context, figure, log, timed

NAME = "preprocessing"
THRESHOLDS = [2.0, 5.0, 10.0, 15.0, 20.0]


def mirrored(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` mirror-tiled (continuously) to ``size x size``."""
    from engine.data.tiling import reflect_index

    idx_r = reflect_index(np.arange(size), array.shape[0])
    idx_c = reflect_index(np.arange(size), array.shape[1])
    return np.ascontiguousarray(array[idx_r][:, idx_c])


def tile_site(
    dsm: np.ndarray, dsm_valid: np.ndarray, chm: np.ndarray, labels: np.ndarray, tile: int
) -> int:
    """The per-site tiling work of ``engine preprocess`` (in memory); returns the tile count."""
    from engine.data.config import NormalisationConfig
    from engine.data.labels import NODATA_LABEL
    from engine.data.normalise import low_surface_from_array, normalise_window
    from engine.data.tiling import cut, plan_tiles

    norm = NormalisationConfig()
    valid = dsm_valid & np.isfinite(chm)
    surface = low_surface_from_array(dsm, dsm_valid, workloads.PIXEL_SIZE, norm)
    tiles = plan_tiles(dsm.shape[0], dsm.shape[1], tile, 0, valid)
    x = np.empty((1, tile, tile), np.float32)
    for t in tiles:
        d = cut(dsm, t.row, t.col, tile, np.nan)
        ok = cut(dsm_valid, t.row, t.col, tile, False)
        x[0] = normalise_window(d, ok, surface, t.row, t.col, norm)
        cut(labels, t.row, t.col, tile, NODATA_LABEL)
        c = cut(chm, t.row, t.col, tile, np.nan)
        np.where(cut(valid, t.row, t.col, tile, False), c, np.nan)
    return len(tiles)


def feature_figures(
    dsm: np.ndarray, ok: np.ndarray, size: int, repeats: int, cmd: str
) -> list[dict[str, Any]]:
    """Mpx/s of the model's feature channels and of the adaptive classical method's heights
    (whole arrays in memory: the filters alone, no reading or writing)."""
    from engine.features.config import AdaptiveParams
    from engine.features.ground import GroundStack, adaptive_heights
    from engine.features.spec import FeatureSpec

    mpx = size * size / 1e6
    out = []
    jobs = {
        "features": lambda: FeatureSpec().compute(dsm, ok, workloads.PIXEL_SIZE),
        "adaptive_heights": lambda: adaptive_heights(
            GroundStack(dsm, ok, workloads.PIXEL_SIZE), AdaptiveParams(), THRESHOLDS
        ),
    }
    for name, job in jobs.items():
        log(f"preprocessing: {name} {size}^2 px")
        secs = timed(job, repeats)
        out.append(figure(f"{name}.{size}.mpx_s", "Mpx/s", [mpx / t for t in secs], command=cmd))
    return out


def run(ctx: Context) -> dict[str, Any]:
    from engine import api
    from engine.data.labels import gap_masks
    from engine.io.raster import RasterReader

    s = ctx.settings
    cmd = ctx.bench_command(NAME)
    scene = workloads.demo_scene(ctx.work, s.demo_size)
    with RasterReader(scene["chm"]) as r:
        chm0, chm_ok0 = r.read()
    with RasterReader(scene["dsm"]) as r:
        dsm0, dsm_ok0 = r.read()
    figures: list[dict[str, Any]] = []
    tile = 256
    for size in s.label_sizes:
        chm, chm_ok = mirrored(chm0, size), mirrored(chm_ok0, size)
        dsm, dsm_ok = mirrored(dsm0, size), mirrored(dsm_ok0, size)
        mpx = size * size / 1e6
        common = {"size": size, "thresholds": THRESHOLDS}
        log(f"preprocessing: labels {size}^2 px")
        secs = timed(lambda c=chm, v=chm_ok: gap_masks(c, v, THRESHOLDS, 1.0), s.prep_repeats)
        figures.append(
            figure(f"labels.{size}.mpx_s", "Mpx/s", [mpx / t for t in secs], command=cmd, **common)
        )
        secs = timed(lambda c=chm, v=chm_ok: gap_masks(c, v, THRESHOLDS, 1.0, 10.0), s.prep_repeats)
        figures.append(
            figure(
                f"labels_min_area.{size}.mpx_s",
                "Mpx/s",
                [mpx / t for t in secs],
                command=cmd,
                min_area_m2=10.0,
                **common,
            )
        )
        figures += feature_figures(dsm, dsm_ok, size, s.prep_repeats, cmd)
        labels = gap_masks(chm, chm_ok, THRESHOLDS, 1.0)
        log(f"preprocessing: tiling {size}^2 px")
        n = tile_site(dsm, dsm_ok, chm, labels, tile)
        secs = timed(
            lambda d=dsm, o=dsm_ok, c=chm, lab=labels: tile_site(d, o, c, lab, tile),
            s.prep_repeats,
            warmup=0,
        )
        figures.append(
            figure(
                f"tiling.{size}.mpx_s",
                "Mpx/s",
                [mpx / t for t in secs],
                command=cmd,
                tile=tile,
                tiles=n,
                **common,
            )
        )
        del chm, chm_ok, dsm, dsm_ok, labels
    out = ctx.work / "prep-bench"
    params = workloads.preprocess_params(scene, out, s.train_tile)
    secs = []
    for _ in range(s.prep_repeats):
        shutil.rmtree(out, ignore_errors=True)
        log("preprocessing: engine preprocess")
        t0 = time.perf_counter()
        api.run("preprocess", params)
        secs.append(time.perf_counter() - t0)
    shutil.rmtree(out, ignore_errors=True)
    mpx = s.demo_size**2 / 1e6
    figures.append(
        figure(
            f"preprocess_command.{s.demo_size}.mpx_s",
            "Mpx/s",
            [mpx / t for t in secs],
            command=cmd,
            size=s.demo_size,
            tile=s.train_tile,
            engine_request={"command": "preprocess", "params": params},
        )
    )
    return {"figures": figures, "targets": [], "notes": []}
