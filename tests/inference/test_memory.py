"""Flat memory: output is written by row bands and peak memory does not grow with raster size."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_dsm

from engine.api import run
from engine.io.raster import RasterWriter


def test_writer_is_fed_row_bands(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    shapes: list[tuple[int, ...]] = []
    original = RasterWriter.write_window

    def spy(self: RasterWriter, array: np.ndarray, row_off: int, col_off: int) -> None:
        shapes.append(np.asarray(array).shape)
        original(self, array, row_off, col_off)

    path = dsm_file("dsm.tif", smooth_dsm(200, 72))
    monkeypatch.setattr(RasterWriter, "write_window", spy)
    res = run(
        "infer",
        {
            "dsm": str(path),
            "model": str(unet_file),
            "output": str(tmp_path / "g.tif"),
            "probabilities": str(tmp_path / "p.tif"),
            "tile_size": 64,
            "precision": "fp32",
        },
    )
    stride = res["rasters"][0]["tile_size"] - 2 * 16
    assert res["rasters"][0]["max_band_rows"] == stride
    assert len(shapes) == 2 * res["rasters"][0]["bands_written"] == 2 * -(-200 // stride)
    assert max(s[1] for s in shapes) <= stride


def _peak(tmp_path: Path, unet_file: Path, height: int, name: str) -> int:
    from conftest import write_dsm

    path = write_dsm(tmp_path / f"{name}.tif", smooth_dsm(height, 96, 1))
    params = {
        "dsm": str(path),
        "model": str(unet_file),
        "output": str(tmp_path / f"{name}_g.tif"),
        "probabilities": str(tmp_path / f"{name}_p.tif"),
        "min_gap_area_m2": 4,
        "fill_holes": True,
        "tile_size": 64,
        "precision": "fp32",
    }
    tracemalloc.start()
    try:
        run("infer", params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_peak_memory_does_not_grow_with_raster_size(tmp_path: Path, unet_file: Path) -> None:
    _peak(tmp_path, unet_file, 256, "warm")  # first-use imports and caches
    small = _peak(tmp_path, unet_file, 512, "small")
    large = _peak(tmp_path, unet_file, 2048, "large")
    full_float = 2048 * 96 * 4 * 3  # a float32 array of the large raster, 3 thresholds (2.4 MB)
    # 4x the rows: the peak (about 1 MB) grows by a few component ids only
    assert large - small < full_float / 16, (small, large)
