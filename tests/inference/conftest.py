"""Fixtures for inference tests: tiny models, model files and small DSM GeoTIFFs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine
from scipy import ndimage

from engine.io.raster import make_info, write_raster
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


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the ONNX export cache of ``runtime=onnxruntime`` runs out of ~/.cache."""
    folder = tmp_path_factory.mktemp("canopygaps-cache")
    old = os.environ.get("CANOPYGAPS_CACHE")
    os.environ["CANOPYGAPS_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("CANOPYGAPS_CACHE", None)
    else:
        os.environ["CANOPYGAPS_CACHE"] = old


@pytest.fixture(scope="session")
def unet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model file of :func:`tiny_unet` (1 m pixels)."""
    return save(tiny_unet(), tmp_path_factory.mktemp("models") / "unet.safetensors")


@pytest.fixture(scope="session")
def oracle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model file of :class:`OracleModel` (1 m pixels)."""
    return save(oracle(), tmp_path_factory.mktemp("models") / "oracle.safetensors")


@pytest.fixture
def dsm_file(tmp_path: Path) -> Callable[..., Path]:
    """``dsm_file(name, data, **kw)`` writes a DSM under the test's tmp folder."""

    def make(name: str, data: np.ndarray, **kw: object) -> Path:
        return write_dsm(tmp_path / name, data, **kw)  # type: ignore[arg-type]

    return make


def files_in(folder: Path) -> list[str]:
    """Every file name under ``folder`` (hidden ones included)."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file())
