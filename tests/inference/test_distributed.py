"""torchrun-style scale-out: two CPU ranks (gloo) give the single-process result byte for byte."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio

from engine.api import run
from engine.io.vector import read_polygons

from .helpers import smooth_dsm

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _params(dsm: Path, model: Path, out: Path) -> dict:
    return {
        "dsm": str(dsm),
        "model": str(model),
        "output": str(out / "gaps.tif"),
        "probabilities": str(out / "p.tif"),
        "polygons": str(out / "g.gpkg"),
        "tile_size": 64,
        "blend": "ramp",
        "overlap": 8,
        "precision": "fp32",
        "min_gap_area_m2": 3,
        "fill_holes": True,
        "num_threads": 1,
    }


def test_two_ranks_equal_single_process(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    dsm = smooth_dsm(150, 80, 7)
    dsm[60:70, 5:15] = np.nan
    path = dsm_file("dsm.tif", dsm)
    single = run("infer", _params(path, unet_file, tmp_path / "single"))
    assert single["rasters"][0]["bands_written"] == 7

    port = _free_port()
    code = (
        "import json, sys; from engine.api import run; "
        "print(json.dumps(run('infer', json.loads(sys.argv[1]))))"
    )
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    code,
                    json.dumps(_params(path, unet_file, tmp_path / "dist")),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["world_size"] for r in results] == [2, 2]
    assert [r["rasters"][0]["bands_written"] for r in results] == [4, 3]

    names = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert names == ["g.gpkg", "gaps.tif", "p.tif"]  # parts and staged files are gone
    for name in ("gaps.tif", "p.tif"):
        with (
            rasterio.open(tmp_path / "single" / name) as a,
            rasterio.open(tmp_path / "dist" / name) as b,
        ):
            assert (
                str(a.profile) == str(b.profile) and a.descriptions == b.descriptions
            )  # NaN nodata
            assert a.read().tobytes() == b.read().tobytes()
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "dist" / name).read_bytes()
    assert read_polygons(tmp_path / "single" / "g.gpkg") == read_polygons(
        tmp_path / "dist" / "g.gpkg"
    )
