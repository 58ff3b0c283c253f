"""Gap polygons: Cancel stops GDAL inside a band; a failed write leaves nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from engine.errors import Cancelled, OutputError
from engine.io.geotiff import write_raster
from engine.io.grid import make_info
from engine.io.vector import polygonise_masks

pytest.importorskip("osgeo.ogr")


def _mask(path: Path, size: int = 256) -> Path:
    """Three bands of scattered one-pixel gaps (many polygons per band)."""
    rng = np.random.default_rng(0)
    masks = (rng.random((3, size, size)) < 0.2).astype(np.uint8)
    like = make_info(size, size, Affine(1, 0, 500000, 0, -1, 4700000), "EPSG:32618", count=3)
    write_raster(path, masks, like, nodata=255)
    return path


def test_cancel_stops_polygonize_within_the_first_band(tmp_path: Path) -> None:
    seen: list[float] = []

    def progress(value: float) -> None:
        seen.append(value)
        if len(seen) == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        polygonise_masks(_mask(tmp_path / "m.tif"), tmp_path / "g.gpkg", [2, 5, 10], progress)
    assert len(seen) == 3, "GDAL went on calling after Cancel"
    # Rows of band 1 report 0 .. 0.8/3: Cancel was seen a few rows into the first band, not
    # after it (GDAL stopped by its callback, not at the next band).
    assert seen[-1] < 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]


def test_full_disk_is_an_output_error_with_nothing_left(tmp_path: Path) -> None:
    from tests.reliability_helpers import file_size_limit

    mask = _mask(tmp_path / "m.tif", 128)
    with file_size_limit(40_000), pytest.raises(OutputError, match=r"g\.gpkg") as info:
        polygonise_masks(mask, tmp_path / "g.gpkg", [2, 5, 10])
    assert "nothing was left in its place" in info.value.message
    assert len(info.value.message) < 600  # no 10 KB SQL statement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]
