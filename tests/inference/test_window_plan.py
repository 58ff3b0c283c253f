"""Window plan: partition of unity, band coverage, reflection, rank shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.tiling import TilePlan, fit_tile, reflect_index, whole_image_indices
from engine.errors import ConfigError
from engine.inference.distributed import split_bands


@pytest.mark.parametrize(("margin", "ramp"), [(8, 0), (8, 8), (0, 12), (16, 4)])
def test_weights_partition_of_unity(margin: int, ramp: int) -> None:
    plan = TilePlan(height=150, width=97, tile=64, margin=margin, ramp=ramp, multiple=8)
    cover = np.zeros(plan.width)
    for j in range(plan.n_cols):
        o = plan.col_origin(j)
        for i, w in enumerate(plan.weights):
            if 0 <= o + i < plan.width:
                cover[o + i] += w
    # exactly 1 everywhere except possibly the partly covered end of the last tile
    assert np.allclose(cover[: (plan.n_cols) * plan.stride - ramp], 1.0, atol=1e-6)
    assert (cover > 0).all()


def test_bands_cover_rows_once() -> None:
    plan = TilePlan(height=203, width=50, tile=64, margin=8, ramp=6, multiple=8)
    rows = [r for k in range(plan.n_rows) for r in range(*plan.band(k))]
    assert rows == list(range(203))
    assert max(b - a for a, b in map(plan.band, range(plan.n_rows))) <= plan.stride + plan.ramp


def test_reflect_index_matches_numpy_pad() -> None:
    x = np.arange(7)
    idx = reflect_index(np.arange(-9, 16), 7)
    assert np.array_equal(x[idx], np.pad(x, (9, 9), mode="reflect"))
    assert whole_image_indices(10, 4, 8).size % 8 == 0


def test_split_bands_is_contiguous_and_complete() -> None:
    shares = [split_bands(11, r, 3) for r in range(3)]
    assert shares == [(0, 4), (4, 8), (8, 11)]
    assert split_bands(1, 1, 2) == (1, 1)


def test_bad_plans_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        TilePlan(100, 100, tile=60, margin=8, multiple=8)
    with pytest.raises(ConfigError, match="no core"):
        TilePlan(100, 100, tile=32, margin=16, multiple=8)


def test_infer_plan_rounds_the_tile_size_down_to_the_model_multiple() -> None:
    from affine import Affine

    from engine.inference.command import plan_for
    from engine.inference.config import InferConfig
    from engine.io.grid import make_info

    grid = make_info(1000, 800, Affine(1.0, 0, 0, 0, -1.0, 0), "EPSG:32632")
    config = InferConfig(dsm=Path("d.tif"), model=Path("m.safetensors"), output=Path("o.tif"))
    for size, depth, tile in [(100, 3, 96), (512, 4, 512), (520, 4, 512), (10, 4, 16)]:
        config.tile_size = size
        assert fit_tile(size, 2**depth) == tile
        if tile >= 4 * 2**depth:  # leaves a core with the default margin
            assert plan_for(config, grid, depth).tile == tile
