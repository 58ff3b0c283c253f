"""Settings of the two commands of this package: ``engine infer`` (:class:`InferConfig`) and
``engine classical`` (:class:`ClassicalConfig`), and how the run reads the auto values
(:func:`stream_settings`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.config.base import Config, fraction, positive, thresholds_ok
from engine.config.base import non_negative as _non_negative
from engine.errors import ConfigError
from engine.features.config import AdaptiveParams
from engine.inference.classical_core import METHODS, ClassicalMethod


class DsmList:
    """The ``dsm`` key of both commands: one DSM, or a list of DSMs (batch mode)."""

    dsm: Path | list[Path]

    @property
    def dsms(self) -> list[Path]:
        """The DSMs as a list."""
        return list(self.dsm) if isinstance(self.dsm, list) else [self.dsm]

    def check_dsms(self) -> None:
        """Refuse an empty list of DSMs."""
        if isinstance(self.dsm, list) and not self.dsm:
            raise ConfigError("Config key 'dsm' is an empty list.", "Give at least one DSM.")


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


def band_field() -> Any:
    """The ``band`` setting of the commands that read a DSM."""
    return field(
        default=None,
        metadata={
            "help": "Band of the DSM holding the heights (default: the DSM must have one band).",
            "check": positive,
        },
    )


def min_gap_area_field() -> Any:
    """Post-processing of gap masks (model and classical method): smallest gap kept."""
    return field(
        default=0.0,
        metadata={
            "help": "Remove gaps (8-connected) smaller than this area in m2 (0 = keep all).",
            "check": _non_negative,
        },
    )


def fill_holes_field() -> Any:
    """Post-processing of gap masks: fill canopy holes enclosed by a gap."""
    return field(
        default=False,
        metadata={"help": "Fill canopy holes enclosed by a gap (done before min area)."},
    )


def max_hole_area_field() -> Any:
    """Post-processing of gap masks: largest hole filled."""
    return field(
        default=None,
        metadata={
            "help": "With fill_holes: only fill holes up to this area in m2 (default any size).",
            "check": _non_negative,
        },
    )


@dataclass
class InferConfig(DsmList, Config):
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
    band: int | None = band_field()
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
    min_gap_area_m2: float = min_gap_area_field()
    fill_holes: bool = fill_holes_field()
    max_hole_area_m2: float | None = max_hole_area_field()
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
        self.check_dsms()
        if self.thresholds is not None and any(t <= 0 for t in self.thresholds):
            raise ConfigError("Config key 'thresholds' must hold positive heights in metres.")


@dataclass
class ClassicalConfig(DsmList, Config):
    """Settings of ``engine classical``."""

    dsm: Path | list[Path] = field(
        metadata={"help": "DSM GeoTIFF (one band, projected CRS in metres), or a list of DSMs."}
    )
    output: Path = field(
        metadata={
            "help": "Gap mask GeoTIFF (uint8, one band per threshold, 255 = nodata); a folder "
            "when several DSMs are given."
        }
    )
    band: int | None = band_field()
    thresholds: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={
            "help": "Height thresholds in metres: gap where height <= threshold.",
            "check": thresholds_ok,
        },
    )
    method: str = field(
        default="adaptive",
        metadata={
            "help": "adaptive (small/large slope-corrected windows blended by forest openness; "
            "parameters chosen on the shared lidar sites) or smoothed_minimum (window_m, "
            "smoothing_m; 21/21 = the ref21 baseline).",
            "choices": METHODS,
        },
    )
    adaptive: AdaptiveParams = field(
        default_factory=AdaptiveParams,
        metadata={"help": "Parameters of the adaptive method (tabulated by threshold)."},
    )
    window_m: float = field(
        default=21.0,
        metadata={
            "help": "smoothed_minimum: side in metres of the local-minimum window.",
            "check": positive,
        },
    )
    smoothing_m: float = field(
        default=21.0,
        metadata={
            "help": "smoothed_minimum: side in metres of the mean filter smoothing the local "
            "minimum (0 = none).",
            "check": _non_negative,
        },
    )
    heights: Path | None = field(
        default=None,
        metadata={
            "help": "Optional float32 GeoTIFF of heights above the ground estimate (adaptive: "
            "one band per threshold)."
        },
    )
    polygons: Path | None = field(
        default=None,
        metadata={
            "help": "Optional GeoPackage of gap polygons (threshold_m, area_m2, perimeter_m)."
        },
    )
    min_gap_area_m2: float = min_gap_area_field()
    fill_holes: bool = fill_holes_field()
    max_hole_area_m2: float | None = max_hole_area_field()
    band_rows: int = field(
        default=512,
        metadata={
            "help": "Rows processed per streamed band (each is read with the method's context of "
            "up to 71 rows above and below).",
            "check": positive,
        },
    )
    workers: int = field(
        default=2,
        metadata={
            "help": "Blocks computed at a time, each in its own thread: 2 is fastest on two or "
            "more cores; 1 holds one block's arrays instead of two (about 90 MB less).",
            "check": positive,
        },
    )

    def validate(self) -> None:
        self.check_dsms()
        if not self.thresholds or any(t <= 0 for t in self.thresholds):
            raise ConfigError("Config key 'thresholds' must hold positive heights in metres.")
        if self.method not in METHODS:
            raise ConfigError(
                f"Config key 'method' = {self.method!r}; valid methods: {', '.join(METHODS)}."
            )
        self.adaptive.validate()

    def calculation(self) -> ClassicalMethod:
        """The method and settings of this run."""
        return ClassicalMethod(
            [float(t) for t in self.thresholds],
            self.method,
            self.adaptive,
            self.window_m,
            self.smoothing_m,
        )
