"""``engine infer``: gap masks at several height thresholds for DSMs of any size.

Per DSM: check it fits the model (projected CRS in metres, one band, pixel size within a
tolerance or resampled on request), prepare the model's input transform (feature channels need
nothing; legacy models compute a low surface in a first streaming pass), then stream tile rows
through the model (prefetch thread, batches; torch with
``inference_mode``, channels_last, bf16/fp16 autocast, or onnxruntime fp32 on the CPU, the CPU
default: :mod:`engine.inference.onnx_predictor`) and write finished row bands as they come
(:mod:`engine.inference.stream`; the outputs go through the path shared with ``engine
classical``: :mod:`engine.inference.batch`, :func:`engine.inference.pipeline.write_outputs`).
Outputs keep the grid of the DSM; every output of the run appears only when the whole run
succeeded. Settings: :class:`~engine.inference.config.InferConfig`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.data.tiling import TilePlan, auto_margin, fit_tile
from engine.errors import Cancelled, ConfigError, ModelFileError
from engine.events import Reporter
from engine.features.inputs import InputTransform, transform_for
from engine.inference import stream
from engine.inference.batch import batch_result, raster_result, run_batch
from engine.inference.config import InferConfig, stream_settings
from engine.inference.device import DeviceChoice, choose_device
from engine.inference.distributed import DistContext, dist_context
from engine.inference.naming import OutputNames, output_names
from engine.inference.onnx_predictor import OnnxPredictor, require_onnxruntime, resolve_runtime
from engine.inference.pipeline import ExtraSpec, Post, Windows, compute_reporter, write_outputs
from engine.inference.predictor import Predictor, TilePredictor, select_thresholds
from engine.inference.readers import ThreadReaders, WindowReader, check_dsm, open_dsm
from engine.inference.staging import Staging
from engine.inference.stream import predict_chunks
from engine.io.grid import RasterInfo

Loaded = tuple[Any, Any, list[float], list[int] | None]
"""``(model, description, thresholds fed to the model, output channels kept or None)``."""
PredictorFactory = Callable[[InferConfig, Loaded, DeviceChoice, str, Reporter], TilePredictor]
"""Builds the run's model runner: ``(config, loaded, device choice, runtime, reporter)``."""


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


@dataclass
class _ModelWindows:
    """The model's ``produce(first, stop)`` for one DSM (see :mod:`engine.inference.pipeline`):
    opens the DSM (one handle, or one per reader thread), prepares the input transform, predicts
    the tile rows chunk by chunk and turns each finished cell into masks and float layers.
    ``timing`` gets the seconds of the surface pass, of predicting and of waiting for the
    reader(s)."""

    config: InferConfig
    names: OutputNames
    grid_info: tuple[RasterInfo, RasterInfo | None]
    plan: TilePlan
    transform: InputTransform
    predictor: TilePredictor
    settings: tuple[int, int]
    reporter: Reporter
    timing: dict[str, float] = field(
        default_factory=lambda: {"surface": 0.0, "predict": 0.0, "reader_wait": 0.0}
    )

    def _reader(self) -> WindowReader | ThreadReaders:
        resampled, band = self.grid_info[1], self.config.band
        if self.settings[1] == 1:
            return open_dsm(self.names.dsm, resampled, band)
        return ThreadReaders(self.names.dsm, resampled, band)

    def __call__(self, first: int, stop: int) -> Windows:
        batch, workers = self.settings
        prob_format = self.config.probability_format if self.names.probabilities else None
        with_height = self.names.heights is not None
        reader = self._reader()
        try:
            t0 = time.perf_counter()
            self.transform.prepare(
                reader.read_window, self.plan.height, self.plan.width, stream.CHUNK_PX
            )
            self.timing["surface"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for row, _, col, _, logits, valid in predict_chunks(
                reader.read_window,
                self.plan,
                self.transform,
                self.predictor,
                batch,
                (first, stop),
                progress=self.reporter.progress,
                prefetch=self.config.prefetch,
                workers=workers,
                stats=self.timing,
            ):
                mask, layers = _to_outputs(logits, valid, prob_format, with_height)
                del logits
                yield row, col, mask, layers
            self.timing["predict"] = time.perf_counter() - t0
        finally:
            reader.close()


@dataclass
class _ModelRun:
    """What the DSMs of one ``engine infer`` run share; :meth:`write_one` does one DSM."""

    config: InferConfig
    desc: Any
    predictor: TilePredictor
    depth: int
    thresholds: list[float]
    ctx: DistContext
    reporter: Reporter

    def extras(self, names: OutputNames) -> list[ExtraSpec]:
        """The float layers requested: probabilities, heights."""
        extras = []
        if names.probabilities is not None:
            uint8 = self.config.probability_format == "uint8"
            extras.append(
                ExtraSpec(
                    names.probabilities,
                    len(self.thresholds),
                    dtype="uint8" if uint8 else "float32",
                    nodata=255 if uint8 else float("nan"),
                    descriptions=[
                        f"gap probability{' %' if uint8 else ''} <= {t:g} m"
                        for t in self.thresholds
                    ],
                )
            )
        if names.heights is not None:
            extras.append(ExtraSpec(names.heights, 1, descriptions=["canopy height (m)"]))
        return extras

    def write_one(
        self,
        names: OutputNames,
        grid_info: tuple[RasterInfo, RasterInfo | None],
        staging: Staging,
        reporter: Reporter,
    ) -> dict[str, Any]:
        """Write the outputs of one DSM (``grid_info``: its grid, the resampled one or None);
        return its result."""
        grid = grid_info[1] or grid_info[0]
        transform = transform_for(self.desc, grid.pixel_size)
        plan = plan_for(self.config, grid, self.depth)
        settings = stream_settings(self.config, self.predictor.choice.device)
        compute = compute_reporter(reporter, self.ctx, "predict")
        windows = _ModelWindows(
            self.config, names, grid_info, plan, transform, self.predictor, settings, compute
        )
        fwd0 = self.predictor.forward_seconds
        bands = [plan.band(k) for k in range(plan.n_rows)]
        post = Post.from_config(self.config, grid.pixel_area)
        extras = self.extras(names)
        stats = write_outputs(
            grid, self.thresholds, bands, windows, names, extras, post, self.ctx, staging, reporter
        )
        fwd = self.predictor.forward_seconds - fwd0
        result = {
            **raster_result(names, grid, probabilities=True),
            "pixel_size": grid.pixel_size,
            "resampled": grid_info[1] is not None,
            **_figures(plan, settings, windows.timing, fwd),
            **stats,
        }
        if self.ctx.rank == 0 and result["mpx_per_s"]:
            self.reporter.log(
                f"{names.dsm.name}: {result['mpx_per_s']} Mpx/s, forward share "
                f"{result['forward_share']}"
            )
        return result


def _figures(
    plan: TilePlan, settings: tuple[int, int], timing: dict[str, float], fwd: float
) -> dict[str, Any]:
    """Tiling and speed figures of one DSM (``fwd``: seconds in the model's forward passes)."""
    predict = timing["predict"]
    mpx = plan.width * plan.height / 1e6
    return {
        "tiles": plan.n_tiles,
        "tile_size": plan.tile,
        "batch_size": settings[0],
        "reader_threads": settings[1],
        "seconds_surface": round(timing["surface"], 3),
        "seconds_predict": round(predict, 3),
        "seconds_reader_wait": round(timing["reader_wait"], 3),
        "forward_seconds": round(fwd, 3),
        "mpx_per_s": round(mpx / predict, 3) if predict > 0 else None,
        "forward_share": round(fwd / predict, 3) if predict > 0 else None,
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


def _device(config: InferConfig, ctx: DistContext) -> str:
    """The device to ask for: the config's, the CPU for onnxruntime under auto, and under
    torchrun each rank's own GPU."""
    device = config.device
    if config.runtime == "onnxruntime" and device == "auto":
        device = "cpu"  # onnxruntime runs on the CPU
    if ctx.active and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{ctx.local_rank % torch.cuda.device_count()}"
    return device


def _settings_line(
    config: InferConfig,
    predictor: TilePredictor,
    plan0: TilePlan,
    ctx: DistContext,
    thresholds: list[float],
) -> str:
    """The log line that opens a run: runtime, device, tiling, batches, rank, thresholds."""
    choice = predictor.choice
    batch, readers = stream_settings(config, choice.device)
    return (
        f"infer: runtime={predictor.runtime}, device {choice.describe()}, precision "
        f"{choice.precision}, threads {choice.threads}, "
        f"tile {plan0.tile} px (margin {plan0.margin}, blend {config.blend}, "
        f"overlap {plan0.ramp}), "
        f"batch {batch}, reader threads {readers}, rank {ctx.rank}/{ctx.world}, "
        f"thresholds {thresholds} m"
    )


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
    choice = choose_device(_device(config, ctx), config.precision, config.num_threads)
    runtime = resolve_runtime(config.runtime, config.precision, choice)
    depth = int(model.depth)
    plan0 = plan_for(config, grids[0][1] or grids[0][0], depth)
    build = make_predictor or _predictor
    predictor = build(config, (model, desc, fed, channels), choice, runtime, reporter)
    reporter.log(_settings_line(config, predictor, plan0, ctx, thresholds))
    run = _ModelRun(config, desc, predictor, depth, thresholds, ctx, reporter)

    def write_one(i: int, n: OutputNames, staging: Staging, sub: Reporter) -> dict[str, Any]:
        return run.write_one(n, grids[i], staging, sub)

    results = run_batch(names, ctx, write_one, reporter, "infer")
    choice = predictor.choice
    head = {
        "thresholds": thresholds,
        "runtime": predictor.runtime,
        "device": choice.device,
        "precision": choice.precision,
        **predictor.info,
        "threads": choice.threads,
        "rank": ctx.rank,
        "world_size": ctx.world,
    }
    single = ("output", "probabilities", "heights", "polygons", "mpx_per_s", "forward_share")
    return batch_result(results, head, t_start, single)
