"""engine.io raster modules (grid, checks, raster, geotiff): info, checks, boundless windows,
alignment and atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from engine.errors import Cancelled, CRSError, GridError, InputError
from engine.io.checks import check_band_count, check_projected
from engine.io.geotiff import RasterWriter, write_raster
from engine.io.grid import make_info, to_crs, warped_grid
from engine.io.raster import RasterReader, read_aligned, read_info, read_window


def _write(
    path: Path, data: np.ndarray, transform: Affine, crs: str | None, nodata: float | None
) -> Path:
    arr = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(arr)
    return path


T1 = Affine(1.0, 0, 500000.0, 0, -1.0, 4000000.0)


def test_read_info_and_boundless_window(tmp_path: Path) -> None:
    data = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    data[0, 0] = -9999
    data[1, 1] = np.nan
    path = _write(tmp_path / "a.tif", data, T1, "EPSG:32618", -9999)
    info = read_info(path)
    assert (info.width, info.height, info.count, info.pixel_size, info.pixel_area) == (
        30,
        20,
        1,
        1.0,
        1.0,
    )
    assert info.bounds == (500000.0, 3999980.0, 500030.0, 4000000.0)
    check_projected(info)
    check_band_count(info, 1)
    values, valid = read_window(path, -2, -3, 6, 8)
    assert values.shape == (6, 8) and values.dtype == np.float32
    assert not valid[:2].any() and not valid[:, :3].any()
    assert not valid[2, 3] and not valid[3, 4] and np.isnan(values[2, 3])
    assert valid[2, 4] and values[2, 4] == 1.0
    with RasterReader(path) as reader:
        v2, ok2 = read_window(reader, 18, 28, 4, 4)
        assert ok2.sum() == 4 and v2[1, 1] == data[19, 29]
        _, none = reader.read_window(100, 100, 3, 3)
        assert not none.any()


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_info(tmp_path / "missing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match="cannot be read"):
        read_info(junk)
    data = np.ones((2, 5, 5), np.float32)
    geo = _write(tmp_path / "geo.tif", data, Affine(0.001, 0, 10, 0, -0.001, 50), "EPSG:4326", None)
    info = read_info(geo)
    with pytest.raises(CRSError, match="geographic") as exc:
        check_projected(info)
    assert "gdalwarp" in exc.value.hint
    with pytest.raises(InputError, match="2 bands"):
        check_band_count(info, 1)
    nocrs = read_info(_write(tmp_path / "n.tif", data[0], T1, None, None))
    with pytest.raises(CRSError, match="no coordinate"):
        check_projected(nocrs)
    check_projected(nocrs.with_crs("EPSG:32618"))
    rect = read_info(
        _write(tmp_path / "r.tif", data[0], Affine(1, 0, 0, 0, -2, 0), "EPSG:32618", None)
    )
    with pytest.raises(GridError, match="non-square"):
        check_projected(rect)
    rot = read_info(
        _write(tmp_path / "rot.tif", data[0], Affine(1, 0.2, 0, 0.2, -1, 0), "EPSG:32618", None)
    )
    with pytest.raises(GridError, match="rotated"):
        check_projected(rot)
    feet = read_info(_write(tmp_path / "ft.tif", data[0], T1, "EPSG:2263", None))
    with pytest.raises(CRSError, match="not metres"):
        check_projected(feet)


def test_read_aligned_resamples_coarser_shifted_grid(tmp_path: Path) -> None:
    # reference: 1 m grid 40 x 40; source: 2 m grid shifted by 10 m, a plane z = x + y
    ref = make_info(40, 40, T1, "EPSG:32618")
    t2 = Affine(2.0, 0, 500010.0, 0, -2.0, 4000000.0)
    yy, xx = np.mgrid[0:20, 0:20]
    plane = ((xx * 2 + 1) + (yy * 2 + 1)).astype(np.float32)  # x_local + y_local at 2 m centres
    src = _write(tmp_path / "c.tif", plane, t2, "EPSG:32618", -9999)
    values, valid = read_aligned(src, ref)
    assert values.shape == (40, 40)
    assert not valid[:, :10].any()  # left of the source extent
    inner = np.s_[2:38, 12:38]
    ry, rx = np.mgrid[0:40, 0:40]
    expected = (rx + 0.5 - 10) + (ry + 0.5)
    assert valid[inner].all()
    np.testing.assert_allclose(values[inner], expected[inner], atol=1e-3)
    nocrs = _write(tmp_path / "nocrs.tif", plane, t2, None, None)
    with pytest.raises(CRSError, match="no CRS"):
        read_aligned(nocrs, ref)
    again, _ = read_aligned(nocrs, ref, crs="EPSG:32618")
    np.testing.assert_allclose(again[inner], expected[inner], atol=1e-3)


def test_warped_grid_covers_the_raster_with_square_pixels() -> None:
    """Reprojection keeps the path, covers the source extent and gives square pixels: of the
    asked size, or of GDAL's suggested size without one."""
    info = make_info(300, 100, Affine(1, 0, 300000, 0, -1, 4700000), "EPSG:32618", path="a.tif")
    for resolution in (None, 2.0):
        grid = warped_grid(info, to_crs("EPSG:32617"), resolution)
        assert grid.path == info.path and grid.crs == to_crs("EPSG:32617")
        assert grid.res[0] == grid.res[1] and (resolution is None or grid.res[0] == resolution)
        assert grid.width * grid.height * grid.pixel_area >= 300 * 100


def test_writer_roundtrip_and_cleanup(tmp_path: Path) -> None:
    like = make_info(300, 270, T1, "EPSG:32618")
    masks = np.random.default_rng(0).integers(0, 2, (2, 270, 300)).astype(np.uint8)
    out = tmp_path / "o" / "gaps.tif"
    with RasterWriter(
        out,
        like,
        count=2,
        dtype="uint8",
        nodata=255,
        band_descriptions=["gap <= 2 m", "gap <= 5 m"],
    ) as w:
        for r in range(0, 270, 128):
            for c in range(0, 300, 128):
                w.write_window(
                    np.pad(masks, ((0, 0), (0, 128), (0, 128)))[:, r : r + 128, c : c + 128], r, c
                )
    with rasterio.open(out) as ds:
        assert ds.profile["tiled"] and ds.profile["blockxsize"] == 256
        assert ds.compression is not None and ds.nodata == 255
        assert ds.descriptions == ("gap <= 2 m", "gap <= 5 m") and ds.crs.to_epsg() == 32618
        np.testing.assert_array_equal(ds.read(), masks)
    assert [p.name for p in out.parent.iterdir()] == ["gaps.tif"]
    with pytest.raises(Cancelled), RasterWriter(tmp_path / "c.tif", like) as w:
        w.write_window(np.zeros((10, 10), np.float32), 0, 0)
        raise Cancelled()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    p = write_raster(tmp_path / "w.tif", np.ones((270, 300), np.float32), like, nodata=-9999.0)
    assert read_info(p).nodata == -9999.0


def test_writer_uses_fast_compression(tmp_path: Path) -> None:
    """Outputs are written while the model computes: zstd/deflate at level 1, not GDAL's 9/6."""
    like = make_info(70, 60, T1, "EPSG:32618")
    profile = RasterWriter(tmp_path / "x.tif", like).profile()
    key = {"zstd": "zstd_level", "deflate": "zlevel"}[profile["compress"]]
    assert profile[key] == 1
    data = np.random.default_rng(1).normal(300, 20, (60, 70)).astype(np.float32)
    with rasterio.open(write_raster(tmp_path / "z.tif", data, like)) as ds:
        assert ds.compression is not None
        np.testing.assert_array_equal(ds.read(1), data)


@pytest.mark.realdata
def test_forestgapr_file_without_crs_reads(shared_data: Path) -> None:
    info = read_info(shared_data / "forestgapr" / "ALS_CHM_DUC.tif")
    assert info.crs is None and info.shape == (200, 200) and info.pixel_size == 1.0
    values, valid = read_window(info.path, 0, 0, 200, 200)
    assert valid.mean() > 0.9 and np.isnan(values[~valid]).all()


@pytest.mark.parametrize("tagged", [True, False], ids=["nodata-tag", "nan-untagged"])
def test_resampling_never_blends_nodata_into_heights(tmp_path: Path, tagged: bool) -> None:
    """Both resampling readers (read_aligned, infer's ResampledReader) treat the source's
    nodata as missing: a -9999 tag, or NaN in a float raster without a tag. Blended in, -9999
    would make deep false gaps around every hole."""
    from engine.inference.readers import ResampledReader

    t2 = Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)
    heights = np.full((20, 20), 30.0, np.float32)
    heights[8:12, 8:12] = -9999.0 if tagged else np.nan
    src = _write(tmp_path / "hole.tif", heights, t2, "EPSG:32618", -9999.0 if tagged else None)
    ref = make_info(40, 40, T1, "EPSG:32618")
    aligned, ok = read_aligned(src, ref)
    reader = ResampledReader(src, ref)
    try:
        windowed, ok_w = reader.read_window(0, 0, 40, 40)
    finally:
        reader.close()
    for values, valid in ((aligned, ok), (windowed, ok_w)):
        assert not valid[18:22, 18:22].any()  # the hole stays a hole
        assert np.allclose(values[valid], 30.0)  # and nothing around it is pulled down
