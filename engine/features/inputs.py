"""What a model sees: one input transform per model, the same in training and inference.

Two kinds, chosen by the model file's (or dataset's) description:

* :class:`FeatureTransform` (current): the channels of a :class:`FeatureSpec`, computed from a
  window read with ``halo`` pixels of context each side (outside the raster = nodata), so
  every window equals the whole-image result.
* :class:`LowSurfaceTransform` (models before features): one channel, the DSM above a
  low-percentile surface computed once per raster on a coarse grid (``prepare``).

Both expose ``channels``, ``halo`` (pixels of context a window needs), ``prepare(read,
height, width, budget_px)`` (a pass over the raster before windows, or nothing),
``window(values, valid, row, col)`` (values read with the halo; returns ``[C, h, w]`` without
it) and ``whole(dsm, valid)`` (an array in memory: training sites, tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.data.config import NormalisationConfig
from engine.data.normalise import (
    LowSurface,
    block_size_px,
    low_surface_from_array,
    low_surface_from_strips,
    normalise_window,
)
from engine.features.ground import aligned_origin
from engine.features.spec import FeatureSpec

ReadFn = Callable[[int, int, int, int], tuple[NDArray[np.float32], NDArray[np.bool_]]]
PREPARE_PX = 2**20  # pixels per read of the preparation pass


class InputTransform(Protocol):
    """See the module docstring."""

    channels: int
    halo: int

    def prepare(
        self, read: ReadFn, height: int, width: int, budget_px: int = PREPARE_PX
    ) -> None: ...

    def window(
        self, values: NDArray[np.float32], valid: NDArray[np.bool_], row: int, col: int
    ) -> NDArray[np.float32]: ...

    def whole(self, dsm: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]: ...


class FeatureTransform:
    """Feature channels of ``spec`` at ``pixel_size``."""

    def __init__(self, spec: FeatureSpec, pixel_size: float) -> None:
        self.spec, self.pixel_size = spec, pixel_size
        self.channels = spec.channels
        self.halo = spec.halo_px(pixel_size)

    def prepare(self, read: ReadFn, height: int, width: int, budget_px: int = PREPARE_PX) -> None:
        """Nothing to prepare: every channel is a windowed filter."""

    def window(
        self, values: NDArray[np.float32], valid: NDArray[np.bool_], row: int, col: int
    ) -> NDArray[np.float32]:
        h = self.halo
        # compute from the first row/column on the ground grid's cells (0 or 1 dropped)
        dr, dc = aligned_origin(row - h), aligned_origin(col - h)
        x = self.spec.compute(values[dr:, dc:], valid[dr:, dc:], self.pixel_size)
        rows, cols = values.shape[0] - 2 * h, values.shape[1] - 2 * h
        return x[:, h - dr : h - dr + rows, h - dc : h - dc + cols]

    def whole(self, dsm: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
        return self.spec.compute(dsm, valid, self.pixel_size)


class LowSurfaceTransform:
    """The single normalised-DSM channel of models made before feature channels."""

    channels = 1
    halo = 0

    def __init__(self, config: NormalisationConfig, pixel_size: float) -> None:
        self.config, self.pixel_size = config, pixel_size
        self.surface: LowSurface | None = None

    def prepare(self, read: ReadFn, height: int, width: int, budget_px: int = PREPARE_PX) -> None:
        """The low surface of the raster, read one group of blocks (at most ``budget_px``
        pixels) at a time."""
        block = block_size_px(self.config, self.pixel_size)
        per = max(1, budget_px // (block * block))
        n_cols = -(-width // block)

        def strips() -> Any:
            for bi in range(-(-height // block)):
                r0 = bi * block
                for g in range(0, n_cols, per):
                    c0 = g * block
                    h, w = min(block, height - r0), min(per * block, width - c0)
                    values, valid = read(r0, c0, h, w)
                    yield bi, g, values, valid

        self.surface = low_surface_from_strips(
            strips(), height, width, block, self.config.percentile
        )

    def window(
        self, values: NDArray[np.float32], valid: NDArray[np.bool_], row: int, col: int
    ) -> NDArray[np.float32]:
        if self.surface is None:
            raise RuntimeError("LowSurfaceTransform.prepare must run before window().")
        return normalise_window(values, valid, self.surface, row, col, self.config)[None]

    def whole(self, dsm: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
        surface = low_surface_from_array(dsm, valid, self.pixel_size, self.config)
        return normalise_window(dsm, valid, surface, 0, 0, self.config)[None]


def transform_for(description: Any, pixel_size: float) -> InputTransform:
    """The input transform recorded in a model description or dataset manifest (a mapping or an
    object with ``features`` / ``normalisation``)."""
    from engine.config.base import from_dict

    get = (
        description.get
        if isinstance(description, dict)
        else lambda k: getattr(description, k, None)
    )
    features = get("features")
    if features:
        spec = features if isinstance(features, FeatureSpec) else from_dict(FeatureSpec, features)
        spec.validate()
        return FeatureTransform(spec, pixel_size)
    norm = get("normalisation") or {}
    config = norm if isinstance(norm, NormalisationConfig) else from_dict(NormalisationConfig, norm)
    return LowSurfaceTransform(config, pixel_size)
