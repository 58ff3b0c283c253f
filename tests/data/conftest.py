"""Small generated rasters shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from engine.data.config import SynthConfig
from engine.data.synthetic import run_synth


def _write_tif(
    path: Path, data: np.ndarray, transform: Affine, crs: str | None, nodata: float | None = -9999.0
) -> Path:
    """A single-band (or [count, h, w]) float32 GeoTIFF."""
    arr = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(arr.astype(np.float32))
    return path


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 192 x 192 synthetic scene (dsm.tif, dtm.tif, chm.tif) at 1 m in EPSG:32618."""
    out = tmp_path_factory.mktemp("scene") / "scene"
    run_synth(SynthConfig(output=out, size=192, seed=3, gaps=6))
    return out


@pytest.fixture(scope="session")
def write_tif() -> object:
    """The GeoTIFF writer helper ``write_tif(path, data, transform, crs, nodata=-9999)``."""
    return _write_tif
