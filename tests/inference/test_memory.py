"""Flat memory: output is written by row bands and peak memory does not grow with raster size.

Two kinds of checks: Python-level allocations (``tracemalloc``: numpy arrays, in this process),
and the peak resident memory of a fresh process running the command (``VmHWM``: everything,
torch, onnxruntime and GDAL included) for a raster and one with 4x the pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.api import run
from engine.io.geotiff import RasterWriter

from .helpers import THRESHOLDS, save, smooth_dsm, write_dsm


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


CLASSICAL_WORKERS = 1
"""The classical memory tests compute one block at a time. With two in flight (the default)
the peak depends on whether both blocks' working sets happen to peak together, more likely the
more blocks a raster has: a variance of about one block (11 MB measured on the RSS test) that
would hide a whole-raster array. The streaming is the same; ``make bench`` measures the
default (peak RSS at 16384^2 within 1.1 x that at 4096^2)."""


def test_classical_memory_does_not_grow_with_raster_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.inference import classical

    monkeypatch.setattr(classical, "BLOCK_PX", 40_000)
    params = {
        "workers": CLASSICAL_WORKERS,
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


# --- peak RSS of a fresh process ------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
RSS_WIDTH, RSS_HEIGHTS = 512, (2048, 8192)  # same width (same bands), 4x the pixels
RSS_ENV = {
    # GDAL's block cache and glibc's adaptive mmap threshold both grow with use up to a bound:
    # small fixed values make the peak RSS follow the arrays alive, not the allocator history
    "GDAL_CACHEMAX": "4",
    "MALLOC_MMAP_THRESHOLD_": "131072",
    "OMP_NUM_THREADS": "1",
}


def _rss_growth(tmp_path: Path, command: str, params: dict, height: int) -> int:
    """Peak RSS during ``command`` minus the RSS before it (bytes), in a fresh process
    (``bench.child``: imports first, then ``VmHWM`` reset through ``/proc/self/clear_refs``)."""
    name = f"{command}{height}"
    dsm = write_dsm(tmp_path / f"{name}.tif", smooth_dsm(height, RSS_WIDTH, 4))
    spec = {
        "command": command,
        "params": {**params, "dsm": str(dsm), "output": str(tmp_path / f"{name}_gaps.tif")},
        "result": str(tmp_path / f"{name}.json"),
    }
    (tmp_path / f"{name}_spec.json").write_text(json.dumps(spec))
    env = {**os.environ, **RSS_ENV, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "bench.child", str(tmp_path / f"{name}_spec.json")]
    subprocess.run(argv, cwd=ROOT, env=env, check=True, timeout=300)
    report = json.loads(Path(spec["result"]).read_text())
    if report["command_peak_rss_bytes"] is None:
        pytest.skip("peak RSS of the command alone needs Linux (/proc/self/clear_refs)")
    return int(report["command_peak_rss_bytes"]) - int(report["rss_before_bytes"])


def _assert_flat(small: int, large: int) -> None:
    added_px = (RSS_HEIGHTS[1] - RSS_HEIGHTS[0]) * RSS_WIDTH  # 3.1 Mpx
    # measured: the two peaks differ by < 0.3 MB; one float32 array of the raster held whole
    # would add 4 bytes per added pixel (12.6 MB), a uint8 one 1 byte
    assert large - small < added_px, f"peak RSS growth {small / 1e6:.1f} -> {large / 1e6:.1f} MB"


def test_model_peak_rss_does_not_grow_with_raster_size(tmp_path: Path) -> None:
    from engine.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("unet", base_channels=2, depth=1, thresholds=THRESHOLDS, norm="batch")
    model = save(net.eval(), tmp_path / "micro.safetensors")
    params = {"model": str(model), "probabilities": str(tmp_path / "p.tif"), "tile_size": 128}
    # export the ONNX graph (cache shared through CANOPYGAPS_CACHE) before measuring
    run(
        "infer",
        {
            **params,
            "dsm": str(write_dsm(tmp_path / "w.tif", smooth_dsm(64, 64))),
            "output": str(tmp_path / "w_gaps.tif"),
        },
    )
    small, large = (
        _rss_growth(tmp_path, "infer", {**params, "probabilities": str(tmp_path / f"p{h}.tif")}, h)
        for h in RSS_HEIGHTS
    )
    _assert_flat(small, large)


def test_classical_peak_rss_does_not_grow_with_raster_size(tmp_path: Path) -> None:
    params = {"workers": CLASSICAL_WORKERS}
    small, large = (_rss_growth(tmp_path, "classical", params, h) for h in RSS_HEIGHTS)
    _assert_flat(small, large)
