"""``engine infer``: gap masks at several height thresholds for DSMs of any size.

Per DSM: check it fits the model (projected CRS in metres, one band, pixel size within a
tolerance or resampled on request), prepare the model's input transform (feature channels need
nothing; legacy models compute a low surface in a first streaming pass), then stream tile rows
through the model (prefetch thread, batches; torch with
``inference_mode``, channels_last, bf16/fp16 autocast, or onnxruntime fp32 on the CPU, the CPU
default: :mod:`engine.inference.onnx_predictor`) and write finished row bands as they come
(:mod:`engine.inference.stream`, :mod:`engine.inference.pipeline`). Outputs keep the grid of
the DSM; every output of the run appears only when the whole run succeeded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from engine.config.base import Config, fraction, positive, thresholds_ok
from engine.config.base import non_negative as _non_negative
from engine.data.tiling import TilePlan, auto_margin, fit_tile
from engine.errors import Cancelled, ConfigError, ModelFileError
from engine.events import Reporter
from engine.features.inputs import InputTransform, transform_for
from engine.inference import stream
from engine.inference.device import DeviceChoice, choose_device
from engine.inference.distributed import DistContext, dist_context
from engine.inference.naming import OutputNames, output_names
from engine.inference.onnx_predictor import OnnxPredictor, require_onnxruntime, resolve_runtime
from engine.inference.pipeline import ExtraSpec, Post, write_outputs
from engine.inference.predictor import Predictor, TilePredictor, select_thresholds
from engine.inference.readers import ThreadReaders, WindowReader, check_dsm, open_dsm
from engine.inference.staging import Staging
from engine.inference.stream import predict_chunks
from engine.io.raster import RasterInfo

Loaded = tuple[Any, Any, list[float], list[int] | None]
"""``(model, description, thresholds fed to the model, output channels kept or None)``."""
PredictorFactory = Callable[["InferConfig", Loaded, DeviceChoice, str, Reporter], TilePredictor]
"""Builds the run's model runner: ``(config, loaded, device choice, runtime, reporter)``."""


GPU_BATCH = 8
"""Tiles per forward pass on a GPU under ``batch_size: 0`` (auto); 1 on the CPU."""
GPU_READERS = 4
"""Most reader threads under ``reader_threads: 0`` (auto) with a GPU (half the cores at most)."""


def stream_settings(config: InferConfig, device: str) -> tuple[int, int]:
    """``(tiles per forward pass, reader threads)`` of a run on ``device``: the config's
    values, or for 0 (auto) 1 and 1 on the CPU, :data:`GPU_BATCH` and up to
    :data:`GPU_READERS` (half the CPU cores) on a GPU, where the CPU side feeds the model."""
    gpu = device.startswith("cuda")
    batch = config.batch_size or (GPU_BATCH if gpu else 1)
    readers = config.reader_threads or (
        min(GPU_READERS, max(1, (os.cpu_count() or 1) // 2)) if gpu else 1
    )
    return batch, readers


@dataclass
class InferConfig(Config):
    """Settings of ``engine infer``."""

    dsm: Path | list[Path] = field(
        metadata={
            "help": "DSM GeoTIFF (one band, projected CRS in metres), or a list of DSMs "
            "(batch mode)."
        }
    )
    model: Path = field(
        metadata={"help": "Model file (.safetensors) written by 'canopygaps train'."}
    )
    output: Path = field(
        metadata={
            "help": "Gap mask GeoTIFF (uint8, one band per threshold, 255 = nodata); a folder "
            "when several DSMs are given (<name>_gaps.tif each)."
        }
    )
    band: int | None = field(
        default=None,
        metadata={
            "help": "Band of the DSM holding the heights (default: the DSM must have one band).",
            "check": positive,
        },
    )
    probabilities: Path | None = field(
        default=None,
        metadata={
            "help": "Optional gap probability GeoTIFF (one band per threshold); a folder in "
            "batch mode."
        },
    )
    heights: Path | None = field(
        default=None,
        metadata={
            "help": "Optional predicted canopy height GeoTIFF (float32 metres, NaN = nodata), "
            "for models that estimate height; a folder in batch mode."
        },
    )
    probability_format: Literal["float32", "uint8"] = field(
        default="float32",
        metadata={
            "help": "float32 probabilities 0..1 (NaN = nodata) or uint8 percent 0..100 "
            "(255 = nodata)."
        },
    )
    polygons: Path | None = field(
        default=None,
        metadata={
            "help": "Optional GeoPackage of gap polygons (threshold_m, area_m2, perimeter_m); "
            "a folder in batch mode."
        },
    )
    thresholds: list[float] | None = field(
        default=None,
        metadata={
            "help": "Height thresholds in metres; default: the model's. Any value for a model "
            "that predicts at any threshold (film_unet, and models with a height or "
            "residual_height head), else a subset of the model's (the default model: 2, 5, "
            "10, 15, 20 m).",
            "check": thresholds_ok,
        },
    )
    tile_size: int = field(
        default=512,
        metadata={
            "help": "Tile size in pixels (rounded down to a multiple of 2**depth; smaller "
            "rasters use one tile).",
            "check": positive,
        },
    )
    blend: Literal["crop", "ramp"] = field(
        default="crop",
        metadata={
            "help": "crop: keep each tile's centre (99.99 % of mask pixels as in one whole-image "
            "pass for the default model); ramp: cosine-weighted blend over 'overlap' pixels as "
            "well (smooth where tiles disagree)."
        },
    )
    margin: int | None = field(
        default=None,
        metadata={
            "help": "Context pixels dropped on each tile side; default 2**(depth+1) (where most "
            "of a U-Net's receptive field weighs).",
            "check": _non_negative,
        },
    )
    overlap: int | None = field(
        default=None,
        metadata={
            "help": "Width in pixels of the blending ramps (blend=ramp); default = margin.",
            "check": _non_negative,
        },
    )
    batch_size: int = field(
        default=0,
        metadata={
            "help": f"Tiles per forward pass; 0 = auto: 1 on the CPU (best there), "
            f"{GPU_BATCH} on a GPU (fewer, larger kernel launches).",
            "check": _non_negative,
        },
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "auto (CUDA if present), cpu, cuda or cuda:N.",
            "choices": ("auto", "cpu", "cuda"),
        },
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={
            "help": "Numeric precision; auto = bf16/fp16 on GPU, exact fp32 on CPUs "
            "(bf16 on request: faster on CPUs with native bf16, masks differ by ~0.02 %)."
        },
    )
    runtime: Literal["auto", "torch", "onnxruntime"] = field(
        default="auto",
        metadata={
            "help": "Inference runtime; auto = onnxruntime on the CPU when installed and the "
            "precision is auto/fp32 (1.3-1.45x torch fp32 end to end, same masks), torch on GPUs "
            "and for bf16. onnxruntime "
            "runs fp32 on the CPU; its ONNX export of the model is cached in "
            "$CANOPYGAPS_CACHE (default ~/.cache/canopygaps)."
        },
    )
    min_gap_area_m2: float = field(
        default=0.0,
        metadata={
            "help": "Remove gaps (8-connected) smaller than this area in m2 (0 = keep all).",
            "check": _non_negative,
        },
    )
    fill_holes: bool = field(
        default=False,
        metadata={"help": "Fill canopy holes enclosed by a gap (done before min area)."},
    )
    max_hole_area_m2: float | None = field(
        default=None,
        metadata={
            "help": "With fill_holes: only fill holes up to this area in m2 (default any size).",
            "check": _non_negative,
        },
    )
    resample: bool = field(
        default=False,
        metadata={
            "help": "Resample DSMs whose pixel size differs from the model's (outputs then use "
            "the model's pixel size); otherwise such DSMs are an error."
        },
    )
    pixel_size_tolerance: float = field(
        default=0.05,
        metadata={
            "help": "Accepted relative difference between DSM and model pixel size.",
            "check": fraction,
        },
    )
    num_threads: int = field(
        default=0,
        metadata={
            "help": "CPU threads for torch and onnxruntime (0 = torch default).",
            "check": _non_negative,
        },
    )
    prefetch: int = field(
        default=2,
        metadata={
            "help": "Column chunks of tile rows read ahead by the reader thread(s).",
            "check": positive,
        },
    )
    reader_threads: int = field(
        default=0,
        metadata={
            "help": "Threads that read, normalise and cut tiles while the model computes; "
            f"0 = auto: 1 on the CPU (its cores run the model), up to {GPU_READERS} with a GPU.",
            "check": _non_negative,
        },
    )

    def validate(self) -> None:
        if isinstance(self.dsm, list) and not self.dsm:
            raise ConfigError("Config key 'dsm' is an empty list.", "Give at least one DSM.")
        if self.thresholds is not None and any(t <= 0 for t in self.thresholds):
            raise ConfigError("Config key 'thresholds' must hold positive heights in metres.")

    @property
    def dsms(self) -> list[Path]:
        """The DSMs as a list."""
        return list(self.dsm) if isinstance(self.dsm, list) else [self.dsm]


def _load(config: InferConfig) -> tuple[Any, Any]:
    from engine.models.modelfile import load_model

    model, desc = load_model(config.model)
    try:
        channels = transform_for(desc, float(desc.pixel_size or 1.0)).channels
    except ConfigError as exc:
        raise ModelFileError(
            f"The input settings of {config.model} are invalid: {exc.message}", exc.hint
        ) from None
    if int(desc.in_channels) != channels:
        raise ModelFileError(
            f"{config.model} expects {desc.in_channels} input channels, but its description "
            f"yields {channels} from a DSM.",
            "Use a model file written by 'canopygaps train' from a DSM dataset.",
        )
    if config.heights is not None and not getattr(model, "estimates_height", False):
        raise ConfigError(
            f"The model {config.model} does not estimate canopy height, so it cannot write "
            "'heights'.",
            "Leave 'heights' empty, or use a model with a height head (the default model has one).",
        )
    return model, desc


def plan_for(config: InferConfig, grid: RasterInfo, depth: int) -> TilePlan:
    """The tile plan ``engine infer`` uses for a raster grid and a model of this ``depth``.

    Tile size rounded down to a multiple of ``2**depth`` (and no larger than the raster needs),
    margin (default :func:`~engine.data.tiling.auto_margin`) and blending ramp from
    ``config``. Public so benchmarks and tests time or compare exactly the run's tiles.
    """
    multiple = 2**depth
    tile = fit_tile(config.tile_size, multiple)
    margin = auto_margin(depth, tile) if config.margin is None else config.margin
    ramp = 0 if config.blend == "crop" else (margin if config.overlap is None else config.overlap)
    lead = margin + ramp
    needed = -(-(max(grid.height, grid.width) + 2 * lead + ramp) // multiple) * multiple
    return TilePlan(grid.height, grid.width, min(tile, needed), margin, ramp, multiple)


def _to_outputs(
    out: NDArray[np.float32],
    valid: NDArray[np.bool_],
    prob_format: str | None,
    with_height: bool,
) -> tuple[NDArray[np.uint8], list[NDArray[Any]]]:
    """Mask and float layers (probabilities, heights: those requested, in that order) from the
    stitched predictor output (logits, then the height channel when ``with_height``)."""
    logits = out[:-1] if with_height else out
    mask = (logits > 0).astype(np.uint8)
    mask[:, ~valid] = 255
    layers: list[NDArray[Any]] = []
    if prob_format is not None:
        from scipy.special import expit

        p = expit(logits)
        if prob_format == "uint8":
            pct = np.rint(p * 100).astype(np.uint8)
            pct[:, ~valid] = 255
            layers.append(pct)
        else:
            p[:, ~valid] = np.nan
            layers.append(p.astype(np.float32))
    if with_height:
        h = out[-1:].astype(np.float32)
        h[:, ~valid] = np.nan
        layers.append(h)
    return mask, layers


def _infer_one(
    config: InferConfig,
    names: OutputNames,
    grid_info: tuple[RasterInfo, RasterInfo | None],
    predictor: TilePredictor,
    depth: int,
    transform: InputTransform,
    thresholds: list[float],
    ctx: DistContext,
    staging: Staging,
    reporter: Reporter,
) -> dict[str, Any]:
    info, resampled = grid_info
    grid = resampled or info
    plan = plan_for(config, grid, depth)
    batch, workers = stream_settings(config, predictor.choice.device)
    timing = {"surface": 0.0, "predict": 0.0, "reader_wait": 0.0}
    fwd0 = predictor.forward_seconds

    def produce(first: int, stop: int) -> Any:
        reader: WindowReader | ThreadReaders = (
            open_dsm(names.dsm, resampled, config.band)
            if workers == 1
            else ThreadReaders(names.dsm, resampled, config.band)
        )
        try:
            t0 = time.perf_counter()
            transform.prepare(reader.read_window, grid.height, grid.width, stream.CHUNK_PX)
            timing["surface"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            step = reporter.sub(0.0, 0.85 if ctx.rank == 0 else 1.0, "predict")
            for row, _, col, _, logits, valid in predict_chunks(
                reader.read_window,
                plan,
                transform,
                predictor,
                batch,
                (first, stop),
                progress=step.progress,
                prefetch=config.prefetch,
                workers=workers,
                stats=timing,
            ):
                mask, layers = _to_outputs(
                    logits,
                    valid,
                    config.probability_format if names.probabilities else None,
                    names.heights is not None,
                )
                del logits
                yield row, col, mask, layers
            timing["predict"] = time.perf_counter() - t0
        finally:
            reader.close()

    extras = []
    if names.probabilities is not None:
        uint8 = config.probability_format == "uint8"
        extras.append(
            ExtraSpec(
                staging.path(names.probabilities),
                len(thresholds),
                dtype="uint8" if uint8 else "float32",
                nodata=255 if uint8 else float("nan"),
                descriptions=[
                    f"gap probability{' %' if uint8 else ''} <= {t:g} m" for t in thresholds
                ],
            )
        )
    if names.heights is not None:
        extras.append(ExtraSpec(staging.path(names.heights), 1, descriptions=["canopy height (m)"]))
    post = Post.from_config(config, grid.pixel_area)
    bands = [plan.band(k) for k in range(plan.n_rows)]
    stats = write_outputs(
        grid,
        thresholds,
        bands,
        produce,
        staging.path(names.mask),
        extras,
        staging.path(names.polygons) if names.polygons else None,
        post,
        ctx,
        staging,
        names.work_dir,
        reporter,
    )
    mpx = grid.width * grid.height / 1e6
    fwd = predictor.forward_seconds - fwd0
    return {
        "dsm": str(names.dsm),
        "output": str(names.mask),
        "probabilities": str(names.probabilities) if names.probabilities else None,
        "heights": str(names.heights) if names.heights else None,
        "polygons": str(names.polygons) if names.polygons else None,
        "width": grid.width,
        "height": grid.height,
        "pixel_size": grid.pixel_size,
        "resampled": resampled is not None,
        "tiles": plan.n_tiles,
        "tile_size": plan.tile,
        "batch_size": batch,
        "reader_threads": workers,
        "seconds_surface": round(timing["surface"], 3),
        "seconds_predict": round(timing["predict"], 3),
        "seconds_reader_wait": round(timing["reader_wait"], 3),
        "forward_seconds": round(fwd, 3),
        "mpx_per_s": round(mpx / timing["predict"], 3) if timing["predict"] > 0 else None,
        "forward_share": round(fwd / timing["predict"], 3) if timing["predict"] > 0 else None,
        **stats,
    }


def _predictor(
    config: InferConfig,
    loaded: Loaded,
    choice: DeviceChoice,
    runtime: str,
    reporter: Reporter,
) -> TilePredictor:
    """The model runner of this run: onnxruntime (torch when it is unusable under auto)."""
    model, desc, fed, channels = loaded
    if runtime == "onnxruntime":
        try:
            return OnnxPredictor.from_model(
                model,
                desc,
                config.model,
                fed,
                choice,
                channels,
                log=reporter.log,
                with_height=config.heights is not None,
            )
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:
            if config.runtime == "onnxruntime":
                raise
            reporter.log(
                f"runtime auto: onnxruntime is unusable for this model "
                f"({getattr(exc, 'message', exc)}); running torch",
                "warning",
            )
    return Predictor(model, fed, choice, channels, with_height=config.heights is not None)


def run_infer(
    config: InferConfig, reporter: Reporter, make_predictor: PredictorFactory | None = None
) -> dict[str, Any]:
    """Run inference on every DSM; return output paths and timing figures.

    ``make_predictor`` replaces the model runner (default: torch or onnxruntime, see
    :func:`_predictor`); benchmarks time the pipeline around the model with it.
    """
    t_start = time.perf_counter()
    if config.runtime == "onnxruntime":
        require_onnxruntime()  # before anything is read or written
    model, desc = _load(config)
    thresholds, fed, channels = select_thresholds(
        config.thresholds, desc.thresholds, bool(desc.conditioned)
    )
    names = output_names(
        config.dsms, config.output, config.probabilities, config.polygons, heights=config.heights
    )
    grids = [
        check_dsm(n.dsm, desc.pixel_size, config.pixel_size_tolerance, config.resample, config.band)
        for n in names
    ]
    ctx = dist_context()
    device = config.device
    if config.runtime == "onnxruntime" and device == "auto":
        device = "cpu"  # onnxruntime runs on the CPU
    if ctx.active and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{ctx.local_rank % torch.cuda.device_count()}"
    choice = choose_device(device, config.precision, config.num_threads)
    runtime = resolve_runtime(config.runtime, config.precision, choice)
    depth = int(model.depth)
    plan0 = plan_for(config, grids[0][1] or grids[0][0], depth)
    build = make_predictor or _predictor
    predictor = build(config, (model, desc, fed, channels), choice, runtime, reporter)
    choice, runtime = predictor.choice, predictor.runtime
    batch, readers = stream_settings(config, choice.device)
    reporter.log(
        f"infer: runtime={runtime}, device {choice.describe()}, precision {choice.precision}, "
        f"threads {choice.threads}, "
        f"tile {plan0.tile} px (margin {plan0.margin}, blend {config.blend}, "
        f"overlap {plan0.ramp}), "
        f"batch {batch}, reader threads {readers}, rank {ctx.rank}/{ctx.world}, "
        f"thresholds {thresholds} m"
    )
    staging = Staging()
    results = []
    try:
        with staging.run(commit=ctx.rank == 0):
            for i, (n, grid) in enumerate(zip(names, grids, strict=False)):
                sub = reporter.sub(i / len(names), (i + 1) / len(names), "infer")
                transform = transform_for(desc, (grid[1] or grid[0]).pixel_size)
                results.append(
                    _infer_one(
                        config, n, grid, predictor, depth, transform, thresholds, ctx, staging, sub
                    )
                )
                if ctx.rank == 0 and results[-1]["mpx_per_s"]:
                    reporter.log(
                        f"{n.dsm.name}: {results[-1]['mpx_per_s']} Mpx/s, forward share "
                        f"{results[-1]['forward_share']}"
                    )
    finally:
        ctx.close()
    reporter.progress(1.0, "done")
    out: dict[str, Any] = {
        "outputs": [r["output"] for r in results],
        "thresholds": thresholds,
        "runtime": runtime,
        "device": choice.device,
        "precision": choice.precision,
        **predictor.info,
        "threads": choice.threads,
        "rank": ctx.rank,
        "world_size": ctx.world,
        "seconds": round(time.perf_counter() - t_start, 3),
        "rasters": results,
    }
    if len(results) == 1:
        out.update(
            {
                k: results[0][k]
                for k in (
                    "output",
                    "probabilities",
                    "heights",
                    "polygons",
                    "mpx_per_s",
                    "forward_share",
                )
            }
        )
    return out
