"""Helpers of the inference tests: tiny models, model files and small DSM GeoTIFFs.

Importable as ``tests.inference.helpers`` (fixtures live in ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from affine import Affine
from scipy import ndimage

from engine.io.geotiff import write_raster
from engine.io.grid import make_info
from engine.models.base import GapModel
from engine.models.modelfile import ModelDescription, save_model
from engine.models.registry import _EXTRA, build_model, register_model

CRS = "EPSG:32618"
NORM = {"window_m": 16.0, "percentile": 2.0, "scale": 10.0, "clip_m": 80.0}
THRESHOLDS = [2.0, 5.0, 10.0]


def tiny_unet(seed: int = 0, thresholds: Sequence[float] = THRESHOLDS) -> GapModel:
    """A 4-channel, depth-3 U-Net with random weights (batch norm: translation-equivariant)."""
    torch.manual_seed(seed)
    model = build_model("unet", base_channels=4, depth=3, thresholds=list(thresholds), norm="batch")
    return model.eval()


class OracleModel(GapModel):
    """Hand-made 'model': logit = (t - height above the low surface) * gain, conditioned.

    With the normalisation's scale it reads the height back from its input, so it finds gaps
    exactly where DSM - low surface <= t: a model whose right answer is known.
    """

    output_kind = "height"
    conditioned = True

    def __init__(self, thresholds: Sequence[float] = THRESHOLDS, scale: float = 10.0) -> None:
        super().__init__(1, 2, thresholds)
        self.gain = torch.nn.Parameter(torch.tensor([4.0]))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor, thresholds: object = None) -> torch.Tensor:
        self.check_input(x)
        t = self.default_thresholds if thresholds is None else torch.as_tensor(thresholds)
        t = t.to(x.device, torch.float32).reshape(1, -1, 1, 1)
        return (t - x * self.scale) * self.gain


if "oracle_test" not in _EXTRA:
    register_model("oracle_test")(OracleModel)


def oracle() -> GapModel:
    """An :class:`OracleModel` built through the registry (so model files can rebuild it)."""
    return build_model("oracle_test", thresholds=THRESHOLDS).eval()


class WindowMinModel(GapModel):
    """A model with a known receptive field: logit = (t - height above the minimum of the
    ``(2 * radius + 1)``-pixel square around each pixel) * gain, conditioned.

    Minimum and arithmetic are exact and position-independent, so the output at a pixel
    depends on the input within ``radius`` pixels and on nothing else: tiled inference whose
    margin covers the radius equals one whole-image pass bit for bit, and a smaller margin
    does not. ``depth`` only sets the tile multiple (``2**depth``) and the default margin
    (``2**(depth + 1)``: 16 px for depth 3, radius 12).
    """

    output_kind = "height"
    conditioned = True

    def __init__(
        self,
        thresholds: Sequence[float] = THRESHOLDS,
        radius: int = 12,
        depth: int = 3,
        scale: float = 10.0,
    ) -> None:
        super().__init__(1, depth, thresholds)
        self.radius = int(radius)
        self.gain = torch.nn.Parameter(torch.tensor([4.0]))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor, thresholds: object = None) -> torch.Tensor:
        self.check_input(x)
        size = 2 * self.radius + 1
        low = -torch.nn.functional.max_pool2d(-x, size, stride=1, padding=self.radius)
        t = self.default_thresholds if thresholds is None else torch.as_tensor(thresholds)
        t = t.to(x.device, torch.float32).reshape(1, -1, 1, 1)
        return (t - (x - low) * self.scale) * self.gain


if "window_min_test" not in _EXTRA:
    register_model("window_min_test")(WindowMinModel)


def window_min(radius: int = 12) -> GapModel:
    """A :class:`WindowMinModel` (depth 3) built through the registry."""
    return build_model("window_min_test", thresholds=THRESHOLDS, radius=radius).eval()


def save(model: GapModel, path: Path, pixel_size: float = 1.0, tile: int = 64) -> Path:
    """Write ``model`` as a model file with the test normalisation."""
    desc = ModelDescription.from_model(
        model, tile_size=tile, pixel_size=pixel_size, normalisation=NORM
    )
    save_model(path, model, desc)
    return path


def smooth_dsm(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random surface 20-40 m (float32)."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((height, width)), 3, mode="reflect")
    base = (base - base.min()) / max(float(np.ptp(base)), 1e-6)
    return (20 + 20 * base).astype(np.float32)


def write_dsm(
    path: Path,
    data: np.ndarray,
    pixel_size: float = 1.0,
    crs: str | None = CRS,
    nodata: float | None = -9999.0,
) -> Path:
    """Write a float32 DSM (NaN -> nodata) with a north-up transform."""
    transform = Affine(pixel_size, 0, 500000.0, 0, -pixel_size, 4700000.0)
    arr = data if data.ndim == 3 else data[None]
    like = make_info(arr.shape[2], arr.shape[1], transform, crs, count=arr.shape[0], nodata=nodata)
    filled = np.where(np.isfinite(arr), arr, nodata if nodata is not None else np.nan)
    write_raster(path, filled.astype(np.float32), like, nodata=nodata)
    return path


def files_in(folder: Path) -> list[str]:
    """Every file name under ``folder`` (hidden ones included)."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file())
