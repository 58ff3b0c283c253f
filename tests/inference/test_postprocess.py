"""Band-streamed post-processing equals the whole-array result; polygons have exact areas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from engine.inference.postprocess import postprocess_array, postprocess_bands
from engine.io.geotiff import write_raster
from engine.io.grid import make_info
from engine.io.vector import polygonise_masks, read_polygons


@pytest.mark.parametrize("band_rows", [5, 13, 97])
@pytest.mark.parametrize(
    ("min_px", "fill", "max_hole"), [(6, False, None), (0, True, None), (12, True, 30)]
)
def test_streamed_equals_whole(
    band_rows: int, min_px: float, fill: bool, max_hole: float | None
) -> None:
    rng = np.random.default_rng(band_rows)
    field = ndimage.gaussian_filter(rng.random((2, 97, 61)), (0, 1.5, 1.5))
    m = (field > np.median(field)).astype(np.uint8)
    m[:, 40:45, 10:20] = 255
    bands = [(a, min(a + band_rows, 97)) for a in range(0, 97, band_rows)]
    got = np.concatenate(
        [
            b
            for _, b in postprocess_bands(
                lambda a, h: m[:, a : a + h], bands, 61, 2, min_px, fill, max_hole
            )
        ],
        axis=1,
    )
    ref = postprocess_array(m, min_px, fill, max_hole)
    assert np.array_equal(got, ref)
    assert (got == 255).sum() == (m == 255).sum()


def test_fill_holes_and_min_area_semantics() -> None:
    m = np.zeros((1, 20, 20), np.uint8)
    m[0, 2:9, 2:9] = 1
    m[0, 5, 5] = 0  # a hole inside the gap
    m[0, 15, 15] = 1  # a 1-pixel gap
    m[0, 12:20, 0:4] = 1
    m[0, 18, 1] = 0  # canopy pixel enclosed by a gap that touches the border: still a hole
    out = postprocess_array(m, min_area_px=2, fill_holes=True)
    assert out[0, 5, 5] == 1 and out[0, 15, 15] == 0 and out[0, 18, 1] == 1
    edge = np.zeros((1, 10, 10), np.uint8)
    edge[0, :, 3:7] = 1
    edge[0, 0, 5] = 0  # canopy touching the border: not a hole
    assert postprocess_array(edge, 0, True)[0, 0, 5] == 0


def test_polygons_have_exact_area_and_perimeter(tmp_path: Path) -> None:
    m = np.zeros((2, 30, 40), np.uint8)
    m[0, 5:10, 5:15] = 1  # 50 px
    m[0, 20:22, 30:31] = 1  # 2 px
    m[0, 10, 15] = 1  # touches the first one at a corner: 8-connected, so the same gap
    m[1] = 1
    m[1, 0:3, 0:3] = 255
    like = make_info(40, 30, Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0), "EPSG:32618")
    path = write_raster(tmp_path / "m.tif", m, like, nodata=255)
    counts = polygonise_masks(path, tmp_path / "g.gpkg", [2.0, 5.0])
    polys = read_polygons(tmp_path / "g.gpkg")
    assert sum(counts.values()) == len(polys)
    assert counts == {"2": 2, "5": 1}
    low = sorted((p["area_m2"], p["perimeter_m"]) for p in polys if p["threshold_m"] == 2.0)
    assert low == [pytest.approx((0.5, 3.0)), pytest.approx((51 * 0.25, 15.0 + 2.0))]
    big = [p for p in polys if p["threshold_m"] == 5.0]
    assert len(big) == 1 and big[0]["area_m2"] == pytest.approx((1200 - 9) * 0.25)
    assert big[0]["perimeter_m"] == pytest.approx(2 * (20 + 15))


def test_cancel_is_checked_in_every_labelling_band() -> None:
    """Cancel stops the labelling passes (no band is yielded yet there) at the next band."""
    from engine.errors import Cancelled

    m = np.zeros((1, 64, 16), np.uint8)
    reads: list[int] = []

    def read(row: int, height: int) -> np.ndarray:
        reads.append(row)
        return m[:, row : row + height]

    def check() -> None:
        if len(reads) == 2:
            raise Cancelled()

    bands = [(r, r + 8) for r in range(0, 64, 8)]
    with pytest.raises(Cancelled):
        next(postprocess_bands(read, bands, 16, 1, min_area_px=3, fill_holes=True, check=check))
    assert reads == [0, 8]
