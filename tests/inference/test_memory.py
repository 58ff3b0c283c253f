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


def _windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, params: dict, width: int
) -> tuple[int, int, int]:
    """``(largest window read, largest window written, tracemalloc peak)`` of one run on a
    256-row DSM of ``width`` columns."""
    from conftest import write_dsm

    from engine.io.raster import RasterReader

    reads: list[int] = []
    writes: list[int] = []
    read_window, write_window = RasterReader.read_window, RasterWriter.write_window

    def spy_read(self: RasterReader, r: int, c: int, h: int, w: int, band: int = 1) -> object:
        reads.append(h * w)
        return read_window(self, r, c, h, w, band)

    def spy_write(self: RasterWriter, array: np.ndarray, row_off: int, col_off: int) -> None:
        writes.append(int(np.prod(np.asarray(array).shape[-2:])))
        write_window(self, array, row_off, col_off)

    path = write_dsm(tmp_path / f"{command}{width}.tif", smooth_dsm(256, width, 2))
    out = {"dsm": str(path), "output": str(tmp_path / f"{command}{width}_g.tif")}
    with monkeypatch.context() as patch:
        patch.setattr(RasterReader, "read_window", spy_read)
        patch.setattr(RasterWriter, "write_window", spy_write)
        tracemalloc.start()
        try:
            run(command, {**params, **out})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return max(reads), max(writes), peak


def test_model_memory_does_not_grow_with_raster_width(
    tmp_path: Path, unet_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.inference import stream

    monkeypatch.setattr(stream, "CHUNK_PX", 64 * 200)  # 5 tiles of 64 px (192 columns) a chunk
    params = {
        "model": str(unet_file),
        "probabilities": str(tmp_path / "p.tif"),
        "tile_size": 64,
        "precision": "fp32",
    }
    _windows(tmp_path, monkeypatch, "infer", params, 256)  # first-use imports and caches
    narrow = _windows(tmp_path, monkeypatch, "infer", params, 1024)
    wide = _windows(tmp_path, monkeypatch, "infer", params, 4096)
    # the same windows are read (<= the chunk budget) and written, whatever the width
    assert narrow[:2] == wide[:2] and narrow[0] <= stream.CHUNK_PX, (narrow, wide)
    band = 3 * 32 * 4096 * 4  # one full-width band of float32 logits of the wide raster (1.6 MB)
    assert wide[2] - narrow[2] < band / 4, (narrow, wide)


def test_classical_memory_does_not_grow_with_raster_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.inference import classical

    monkeypatch.setattr(classical, "BLOCK_PX", 40_000)
    params = {
        "method": "smoothed_minimum",
        "window_m": 9,
        "smoothing_m": 5,
        "band_rows": 32,
        "heights": str(tmp_path / "h.tif"),
    }
    _windows(tmp_path, monkeypatch, "classical", params, 256)
    narrow = _windows(tmp_path, monkeypatch, "classical", params, 1024)
    wide = _windows(tmp_path, monkeypatch, "classical", params, 4096)
    assert narrow[:2] == wide[:2] and narrow[0] <= classical.BLOCK_PX, (narrow, wide)
    band = (32 + 12) * 4096 * 8  # one float64 array of a full-width band with its halo (1.4 MB)
    assert wide[2] - narrow[2] < band / 4, (narrow, wide)
