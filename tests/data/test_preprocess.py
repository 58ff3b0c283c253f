"""preprocess: dataset layout, grid alignment, bad inputs, cancel, CLI, real sites."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from engine.cli import main
from engine.config.base import from_dict
from engine.data.config import NormalisationConfig, PreprocessConfig
from engine.data.dataset import TileDataset
from engine.data.preprocess import run_preprocess
from engine.data.sites import load_site
from engine.errors import Cancelled, CRSError, InputError, NoDataError
from engine.events import CallbackReporter
from engine.features.inputs import LowSurfaceTransform
from engine.io.raster import read_array


def _config(out: Path, sites: list[dict], **kw: object) -> PreprocessConfig:
    data = {"output": str(out), "sites": sites, "tile_size": 64, "split": {"block_tiles": 1}, **kw}
    return from_dict(PreprocessConfig, data)


def test_dataset_folder_layout_and_items(tmp_path: Path, scene_dir: Path) -> None:
    out = tmp_path / "ds"
    site = {"name": "syn", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(scene_dir / "dtm.tif")}
    result = run_preprocess(_config(out, [site], thresholds=[2, 5, 10], overlap=16))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "canopygaps-dataset" and manifest["format_version"] == 1
    assert manifest["thresholds"] == [2.0, 5.0, 10.0] and manifest["pixel_size"] == 1.0
    assert manifest["sites"][0]["grid"]["crs"] == "EPSG:32618"
    assert set(manifest["sites"][0]["gap_fraction"]) == {"2", "5", "10"}
    assert yaml.safe_load((out / "config.yaml").read_text())["kind"] == "PreprocessConfig"
    n = 0
    for split in ("train", "val", "test"):
        x = np.load(out / split / "inputs.npy", mmap_mode="r")
        y = np.load(out / split / "labels.npy", mmap_mode="r")
        c = np.load(out / split / "chm.npy", mmap_mode="r")
        tiles = json.loads((out / split / "tiles.json").read_text())
        assert x.dtype == np.float32 and y.dtype == np.uint8 and c.dtype == np.float32
        assert x.shape[1:] == (1, 64, 64) and y.shape[1:] == (3, 64, 64) and len(tiles) == len(x)
        assert set(np.unique(y)) <= {0, 1, 255}
        both = (y[:, 0] != 255) & (y[:, 1] != 255)
        assert (y[:, 0][both] <= y[:, 1][both]).all()  # nested
        n += len(x)
    assert n == sum(result["counts"].values()) and result["counts"]["train"] > 0
    # labels in the tiles are those of the whole-site CHM = DSM - DTM
    dsm, _ = read_array(scene_dir / "dsm.tif")
    dtm, _ = read_array(scene_dir / "dtm.tif")
    tile = json.loads((out / "train" / "tiles.json").read_text())[0]
    chm = np.load(out / "train" / "chm.npy")[0, 0]
    r, c = tile["row"], tile["col"]
    np.testing.assert_allclose(chm, (dsm - dtm)[r : r + 64, c : c + 64], atol=1e-4)
    ds = TileDataset(out, "train", thresholds=[5, 7.5], augment=True)
    item = ds[0]
    assert item["image"].shape == (1, 64, 64) and item["target"].shape == (2, 64, 64)
    assert item["valid"].dtype.is_floating_point is False and item["thresholds"].tolist() == [
        5,
        7.5,
    ]
    hv = item["chm"][0].numpy()  # augmentation moves chm and derived target together
    np.testing.assert_array_equal(item["target"][1].numpy() == 1, np.nan_to_num(hv, nan=99) <= 7.5)
    # same seed, same dataset
    out2 = tmp_path / "ds2"
    run_preprocess(_config(out2, [site], thresholds=[2, 5, 10], overlap=16))
    for split in ("train", "val", "test"):
        assert (out / split / "tiles.json").read_text() == (out2 / split / "tiles.json").read_text()
        np.testing.assert_array_equal(
            np.load(out / split / "inputs.npy"), np.load(out2 / split / "inputs.npy")
        )


def test_mismatched_grids_are_aligned(tmp_path: Path, scene_dir: Path, write_tif: Any) -> None:
    chm_true, _ = read_array(scene_dir / "chm.tif")
    dtm_true, _ = read_array(scene_dir / "dtm.tif")
    with rasterio.open(scene_dir / "dtm.tif") as src:
        t, crs = src.transform, src.crs
    # CHM at 2 m (2x2 means) covering a shifted extent: 40 m further east, 20 m less north
    coarse = chm_true[20:180, 40:192].reshape(80, 2, 76, 2).mean(axis=(1, 3))
    t2 = Affine(2.0, 0, t.c + 40, 0, -2.0, t.f - 20)
    chm2 = write_tif(tmp_path / "chm2m.tif", coarse, t2, "EPSG:32618")
    # DTM in another projected CRS (UTM 17N)
    dst_t, w, h = calculate_default_transform(
        crs, "EPSG:32617", 192, 192, *rasterio.transform.array_bounds(192, 192, t)[::-1][::-1]
    )
    dtm17 = np.full((h, w), np.nan, np.float32)
    reproject(
        dtm_true,
        dtm17,
        src_transform=t,
        src_crs=crs,
        dst_transform=dst_t,
        dst_crs="EPSG:32617",
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    dtm_other = write_tif(
        tmp_path / "dtm17.tif", np.nan_to_num(dtm17, nan=-9999), dst_t, "EPSG:32617"
    )
    cfg = _config(
        tmp_path / "x",
        [
            {"name": "a", "dsm": str(scene_dir / "dsm.tif"), "chm": str(chm2)},
            {"name": "b", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(dtm_other)},
        ],
    )
    a = load_site(cfg.sites[0], cfg, 0)
    assert a.chm.shape == (192, 192)
    assert not a.valid[:19].any() and not a.valid[:, :39].any() and a.valid[22:178, 42:190].all()
    ref = np.kron(coarse, np.ones((2, 2)))  # the coarse CHM on the 1 m grid (nearest)
    diff = np.abs(a.chm[22:178, 42:190] - ref[2:158, 2:150])
    assert np.median(diff) < 1.0
    b = load_site(cfg.sites[1], cfg, 1)
    inner = np.s_[8:-8, 8:-8]
    assert b.valid[inner].all()
    assert np.median(np.abs(b.chm[inner] - chm_true[inner])) < 0.05


def test_chm_only_site_with_explicit_crs_and_synthetic_terrain(
    tmp_path: Path, scene_dir: Path, write_tif: Any
) -> None:
    chm, _ = read_array(scene_dir / "chm.tif")
    path = write_tif(
        tmp_path / "nocrs.tif",
        chm,
        Affine(1, 0, 100, 0, -1, 300),
        None,
        None,
    )
    cfg = _config(tmp_path / "y", [{"name": "f", "chm": str(path), "crs": "EPSG:32721"}])
    site = load_site(cfg.sites[0], cfg, 0)
    np.testing.assert_allclose(site.chm, chm)
    ground = site.dsm - site.chm
    assert np.nanmax(ground) - np.nanmin(ground) > 5  # real relief under the canopy
    with pytest.raises(CRSError, match="no coordinate"):
        run_preprocess(_config(tmp_path / "z", [{"name": "f", "chm": str(path)}]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nocrs.tif"]


def _bad_inputs(
    tmp: Path, scene_dir: Path, write_tif: Any
) -> list[tuple[dict, type[Exception], str]]:
    data = np.random.default_rng(0).uniform(0, 30, (64, 64)).astype(np.float32)
    geo = write_tif(tmp / "geo.tif", data, Affine(1e-5, 0, -72, 0, -1e-5, 42), "EPSG:4326")
    two = write_tif(
        tmp / "two.tif", np.stack([data, data]), Affine(1, 0, 100, 0, -1, 300), "EPSG:32618"
    )
    nan = write_tif(
        tmp / "nan.tif", np.full((64, 64), np.nan), Affine(1, 0, 100, 0, -1, 300), "EPSG:32618"
    )
    dtm = str(scene_dir / "dtm.tif")
    return [
        ({"name": "g", "dsm": str(geo), "dtm": dtm}, CRSError, "geographic"),
        ({"name": "t", "dsm": str(two), "dtm": dtm}, InputError, "2 bands"),
        ({"name": "n", "chm": str(nan)}, NoDataError, "no pixel"),
        ({"name": "m", "dsm": str(tmp / "missing.tif"), "dtm": dtm}, InputError, "does not exist"),
        (
            {"name": "o", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(nan)},
            NoDataError,
            "no pixel",
        ),
    ]


def test_bad_inputs_leave_no_output(tmp_path: Path, scene_dir: Path, write_tif: Any) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for site, error, needle in _bad_inputs(inputs, scene_dir, write_tif):
        with pytest.raises(error, match=needle) as exc:
            run_preprocess(_config(tmp_path / "out", [site]))
        assert exc.value.hint, site
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in"], site


def test_cancel_leaves_nothing(tmp_path: Path, scene_dir: Path) -> None:
    events: list[dict] = []
    rep = CallbackReporter(
        events.append, lambda: any(e.get("stage") == "write tiles" for e in events)
    )
    site = {"name": "syn", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(scene_dir / "dtm.tif")}
    with pytest.raises(Cancelled):
        run_preprocess(_config(tmp_path / "out", [site], tile_size=32), rep)
    assert list(tmp_path.iterdir()) == []


def test_cli_synth_and_preprocess(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--output", str(tmp_path / "s"), "--size", "96", "--seed", "5"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        ".canopygaps-output.json",
        "chm.tif",
        "dsm.tif",
        "dtm.tif",
        "scene.json",
    ]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "output": str(tmp_path / "d"),
                "tile_size": 32,
                "sites": [
                    {
                        "name": "s",
                        "dsm": str(tmp_path / "s" / "dsm.tif"),
                        "dtm": str(tmp_path / "s" / "dtm.tif"),
                    }
                ],
            }
        )
    )
    assert (
        main(
            [
                "preprocess",
                "--config",
                str(cfg),
                "--thresholds",
                "2,10",
                "--set",
                "split.block_tiles=1",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["thresholds"] == [2.0, 10.0]
    capsys.readouterr()


@pytest.mark.realdata
def test_real_sites_preprocess(tmp_path: Path, shared_data: Path) -> None:
    real = shared_data / "real"
    sites = [
        {
            "name": "harv",
            "dsm": str(real / "harv" / "dsm.tif"),
            "dtm": str(real / "harv" / "dtm.tif"),
        },
        {
            "name": "topo",
            "dsm": str(real / "topography" / "dsm.tif"),
            "dtm": str(real / "topography" / "dtm.tif"),
        },
        {"name": "mixed", "chm": str(real / "mixedconifer" / "chm.tif")},
        {
            "name": "duc",
            "chm": str(shared_data / "forestgapr" / "ALS_CHM_DUC.tif"),
            "crs": "EPSG:32721",
        },
    ]
    cfg = _config(
        tmp_path / "real",
        sites,
        tile_size=128,
        pixel_size=1.0,
        max_nodata_fraction=0.75,
        split={"holdout": [{"site": "harv", "fraction": 0.3}], "block_tiles": 2},
    )
    result = run_preprocess(cfg)
    manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
    harv = next(s for s in manifest["sites"] if s["name"] == "harv")
    # SOURCES.md: HARV (dsm - dtm) < t gives 5.8 % at 2 m and 21.5 % at 10 m (the full raster
    # gives 6.3 % and 22.3 %: SOURCES' figures are about 0.5-0.8 points lower, origin unknown)
    assert harv["gap_fraction"]["2"] == pytest.approx(0.058, abs=0.015)
    assert harv["gap_fraction"]["10"] == pytest.approx(0.215, abs=0.015)
    assert result["counts"]["test"] > 0 and result["counts"]["train"] > 0
    assert {s["name"] for s in manifest["sites"]} == {"harv", "topo", "mixed", "duc"}


def test_geographic_dsm_with_explicit_reprojection(tmp_path: Path, write_tif: Any) -> None:
    rng = np.random.default_rng(1)
    t = Affine(1.2e-5, 0, -72.0, 0, -1.2e-5, 42.5)
    dtm = write_tif(tmp_path / "dtm.tif", np.full((120, 120), 300.0), t, "EPSG:4326")
    dsm = write_tif(tmp_path / "dsm.tif", 300 + rng.uniform(0, 30, (120, 120)), t, "EPSG:4326")
    site = {"name": "g", "dsm": str(dsm), "dtm": str(dtm)}
    with pytest.raises(CRSError, match="geographic"):
        run_preprocess(_config(tmp_path / "no", [site]))
    cfg = _config(tmp_path / "yes", [site], target_crs="EPSG:32618", pixel_size=1.0, tile_size=32)
    run_preprocess(cfg)
    grid = json.loads((tmp_path / "yes" / "manifest.json").read_text())["sites"][0]["grid"]
    assert grid["crs"] == "EPSG:32618" and grid["pixel_size"] == 1.0


def test_sites_reloaded_for_writing_give_the_same_dataset(
    tmp_path: Path, scene_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the in-memory budget each site is prepared again for the tile-writing pass (memory
    bounded by the largest site): the dataset is byte for byte the one built in memory."""
    import engine.data.sites as sites_module

    loads: list[str] = []
    real_load = sites_module.load_site

    def counting_load(site: Any, config: Any, index: int) -> Any:
        loads.append(site.name)
        return real_load(site, config, index)

    monkeypatch.setattr(sites_module, "load_site", counting_load)
    sites = [
        {"name": "a", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(scene_dir / "dtm.tif")},
        {"name": "b", "chm": str(scene_dir / "chm.tif"), "synthetic_terrain": True},
    ]
    kept, reloaded = tmp_path / "kept", tmp_path / "reloaded"
    run_preprocess(_config(kept, sites, thresholds=[2, 10]))
    assert loads == ["a", "b"]
    run_preprocess(_config(reloaded, sites, thresholds=[2, 10]), keep_px=0)
    assert loads == ["a", "b", "a", "b", "a", "b"]
    for split in ("train", "val", "test"):
        for name in ("inputs.npy", "labels.npy", "chm.npy", "tiles.json"):
            assert (kept / split / name).read_bytes() == (reloaded / split / name).read_bytes()
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (kept, reloaded)]
    assert manifests[0] == manifests[1] and manifests[0]["counts"]["train"] > 0


def test_finer_reference_is_averaged_onto_the_grid(
    tmp_path: Path, scene_dir: Path, write_tif: Any
) -> None:
    """A CHM finer than the site's grid is averaged onto it (each 1 m pixel = the mean of its
    2 x 2 half-metre pixels), not sampled bilinearly, which would alias."""
    with rasterio.open(scene_dir / "dsm.tif") as src:
        t = src.transform
    fine = np.random.default_rng(4).uniform(0, 30, (384, 384)).astype(np.float32)
    chm = write_tif(tmp_path / "chm05.tif", fine, Affine(0.5, 0, t.c, 0, -0.5, t.f), "EPSG:32618")
    site = {"name": "a", "dsm": str(scene_dir / "dsm.tif"), "chm": str(chm)}
    cfg = _config(tmp_path / "x", [site])
    data = load_site(cfg.sites[0], cfg, 0)
    expected = fine.reshape(192, 2, 192, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(data.chm, expected, atol=1e-4)


def test_terrain_copies_repeat_training_tiles_on_tilted_ground(
    tmp_path: Path, scene_dir: Path
) -> None:
    """terrain_copies=1: training tile k comes again at slot k + n_train with the same labels,
    heights and tiles.json record (marked terrain_copy 1) but another input; val and test get
    no copies, and the tiles before the copies are those of a dataset without copies."""
    site = {"name": "syn", "dsm": str(scene_dir / "dsm.tif"), "dtm": str(scene_dir / "dtm.tif")}
    plain, copied = tmp_path / "plain", tmp_path / "copied"
    run_preprocess(_config(plain, [site], thresholds=[2, 5]))
    result = run_preprocess(_config(copied, [site], thresholds=[2, 5], terrain_copies=1))
    base = json.loads((plain / "train" / "tiles.json").read_text())
    n = len(base)
    records = json.loads((copied / "train" / "tiles.json").read_text())
    assert n > 0 and records == base + [{**r, "terrain_copy": 1} for r in base]
    assert result["counts"]["train"] == 2 * n
    for name in ("labels.npy", "chm.npy"):
        arr = np.load(copied / "train" / name)
        np.testing.assert_array_equal(arr[:n], np.load(plain / "train" / name))
        np.testing.assert_array_equal(arr[n:], arr[:n])
    x = np.load(copied / "train" / "inputs.npy")
    np.testing.assert_array_equal(x[:n], np.load(plain / "train" / "inputs.npy"))
    dsm, valid = read_array(scene_dir / "dsm.tif")  # tile 0: the DSM normalised, untilted
    whole = LowSurfaceTransform(NormalisationConfig(), 1.0).whole(dsm, valid)
    r, c = base[0]["row"], base[0]["col"]
    np.testing.assert_array_equal(x[0], whole[:, r : r + 64, c : c + 64])
    assert all(not np.array_equal(x[n + k], x[k]) for k in range(n))
    for split in ("val", "test"):
        for name in ("tiles.json", "inputs.npy", "labels.npy", "chm.npy"):
            assert (copied / split / name).read_bytes() == (plain / split / name).read_bytes()
