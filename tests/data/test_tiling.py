"""Tile plans: small rasters, uneven edges, nodata filtering."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.tiling import Tile, cut, plan_tiles, tile_offsets
from engine.errors import InputError, NoDataError


def test_offsets_cover_the_axis() -> None:
    assert tile_offsets(100, 256) == [0]
    assert tile_offsets(256, 256) == [0]
    assert tile_offsets(600, 256) == [0, 256, 344]
    assert tile_offsets(600, 256, edge="pad") == [0, 256, 512]
    assert tile_offsets(600, 256, overlap=64) == [0, 192, 344]
    with pytest.raises(InputError):
        tile_offsets(600, 256, overlap=256)


def test_small_raster_gets_one_padded_tile() -> None:
    valid = np.ones((50, 60), dtype=bool)
    tiles = plan_tiles(50, 60, 64, valid=valid, max_nodata_fraction=0.5)
    assert tiles == [Tile(0, 0, 64, pytest.approx(1 - 50 * 60 / 64**2))]
    arr = np.arange(50 * 70, dtype=np.float32).reshape(50, 70)
    t = cut(arr, 0, 0, 64, np.nan)
    assert t.shape == (64, 64) and np.isnan(t[50:]).all() and t[49, 63] == arr[49, 63]
    stack = cut(np.ones((2, 50, 70), np.uint8), -5, 10, 64, 255)
    assert stack.shape == (2, 64, 64) and (stack[:, :5] == 255).all() and stack[0, 5, 0] == 1


def test_uneven_edges_and_nodata_filter() -> None:
    h, w = 300, 200
    valid = np.ones((h, w), dtype=bool)
    valid[:, :128] = False  # left part nodata
    aligned = plan_tiles(h, w, 128, valid=valid, max_nodata_fraction=0.5)
    assert {(t.row, t.col) for t in aligned} == {(0, 72), (128, 72), (172, 72)}
    padded = plan_tiles(h, w, 128, valid=np.ones((h, w), bool), max_nodata_fraction=1.0, edge="pad")
    assert max(t.row for t in padded) == 256 and max(t.col for t in padded) == 128
    assert max(t.nodata_fraction for t in padded) == pytest.approx(1 - 44 * 72 / 128**2)


def test_all_nodata_raises_with_hint() -> None:
    with pytest.raises(NoDataError, match="no valid pixel") as exc:
        plan_tiles(64, 64, 32, valid=np.zeros((64, 64), bool))
    assert exc.value.hint
    valid = np.zeros((64, 64), bool)
    valid[0, 0] = True
    with pytest.raises(NoDataError, match="max_nodata_fraction"):
        plan_tiles(64, 64, 32, valid=valid, max_nodata_fraction=0.5)
