"""Several reader threads and the GPU's auto batch: same outputs, settings resolved per device.

``reader_threads > 1`` reads, normalises and cuts chunks in a thread pool, each thread through
its own DSM handle; the results are handed out in order, so the outputs are those of one
reader, byte for byte. ``batch_size: 0`` / ``reader_threads: 0`` mean 1 on the CPU and more
on a GPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.api import run
from engine.config.base import from_dict
from engine.errors import ConfigError
from engine.inference.config import GPU_BATCH, InferConfig, stream_settings
from engine.inference.readers import ThreadReaders
from engine.inference.stream import Prefetcher
from engine.io.raster import read_array

from .helpers import smooth_dsm


def _slow_square(item: int) -> tuple[int, str]:
    time.sleep(0.002 * ((item * 7) % 5))  # finish out of order
    return item * item, threading.current_thread().name


def test_pool_prefetcher_keeps_order_and_uses_threads() -> None:
    fetch = Prefetcher(range(40), _slow_square, depth=3, workers=4)
    try:
        out = list(fetch)
    finally:
        fetch.close()
    assert [v for v, _ in out] == [i * i for i in range(40)]
    assert len({name for _, name in out}) > 1  # really several threads
    assert fetch.wait_seconds >= 0


def test_pool_prefetcher_raises_and_stops_early() -> None:
    def produce(item: int) -> int:
        if item == 5:
            raise ValueError("bad chunk")
        return item

    fetch = Prefetcher(range(50), produce, depth=2, workers=3)
    with pytest.raises(ValueError, match="bad chunk"):
        list(fetch)
    fetch.close()
    early = Prefetcher(range(10**6), lambda i: i, depth=2, workers=3)
    assert next(iter(early)) == 0
    early.close()  # returns although a million items were pending


def test_infer_outputs_identical_with_reader_threads(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    dsm = dsm_file("dsm.tif", smooth_dsm(230, 170, 5))
    outs = {}
    for readers in (1, 3):
        out = tmp_path / f"r{readers}.tif"
        result = run(
            "infer",
            {
                "dsm": str(dsm),
                "model": str(unet_file),
                "output": str(out),
                "probabilities": str(tmp_path / f"p{readers}.tif"),
                "tile_size": 64,
                "device": "cpu",
                "runtime": "torch",
                "reader_threads": readers,
            },
        )
        raster = result["rasters"][0]
        assert raster["reader_threads"] == readers and raster["batch_size"] == 1
        assert raster["tiles"] > 4 and raster["seconds_reader_wait"] >= 0
        outs[readers] = [
            read_array(p, b)[0] for p in (out, tmp_path / f"p{readers}.tif") for b in (1, 2, 3)
        ]
    for a, b in zip(outs[1], outs[3], strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_auto_settings_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    config = InferConfig(dsm=Path("d.tif"), model=Path("m"), output=Path("o.tif"))
    assert (config.batch_size, config.reader_threads) == (0, 0)
    assert stream_settings(config, "cpu") == (1, 1)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert stream_settings(config, "cuda:0") == (GPU_BATCH, 4)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert stream_settings(config, "cuda") == (GPU_BATCH, 1)
    fixed = InferConfig(
        dsm=Path("d.tif"), model=Path("m"), output=Path("o.tif"), batch_size=3, reader_threads=2
    )
    assert stream_settings(fixed, "cpu") == stream_settings(fixed, "cuda") == (3, 2)
    with pytest.raises(ConfigError, match="batch_size"):
        from_dict(InferConfig, {"dsm": "d.tif", "model": "m", "output": "o.tif", "batch_size": -1})


def test_thread_readers_one_handle_per_thread(dsm_file: Callable[..., Path]) -> None:
    path = dsm_file("dsm.tif", smooth_dsm(40, 30, 6))
    readers = ThreadReaders(path, None)
    try:
        first = readers.read_window(0, 0, 10, 10)
        readers.read_window(5, 5, 10, 10)  # same thread: same handle
        assert len(readers._opened) == 1
        seen = []
        worker = threading.Thread(target=lambda: seen.append(readers.read_window(0, 0, 10, 10)))
        worker.start()
        worker.join()
        assert len(readers._opened) == 2  # another thread never shares a GDAL handle
        assert np.array_equal(seen[0][0], first[0])
    finally:
        readers.close()
    assert readers._opened == []
