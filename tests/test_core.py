"""Core plumbing: typed configs, events, atomic outputs, request API and CLI."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from engine.api import run_request
from engine.cli import main
from engine.config.base import Config, from_dict, load_config, positive
from engine.data.config import NormalisationConfig
from engine.data.normalise import low_surface_from_array, normalise_window
from engine.errors import Cancelled, ConfigError
from engine.events import CallbackReporter, JsonLinesReporter
from engine.io.files import atomic_dir, atomic_path


@dataclass
class Inner(Config):
    lr: float = field(default=0.1, metadata={"check": positive})


@dataclass
class Outer(Config):
    name: str
    mode: Literal["a", "b"] = "a"
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    inner: Inner = field(default_factory=Inner)
    out: Path | None = None


def test_config_builds_and_coerces() -> None:
    cfg = from_dict(Outer, {"name": "x", "sizes": [3, "4"], "inner": {"lr": 1}, "out": "a/b"})
    assert cfg.sizes == [3, 4] and cfg.inner.lr == 1.0 and cfg.out == Path("a/b")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"name": "x", "bogus": 1}, "'bogus'"),
        ({"name": "x", "inner": {"lrr": 1}}, "'inner.lrr'"),
        ({"name": "x", "mode": "c"}, "'mode'"),
        ({"name": "x", "inner": {"lr": -1}}, "'inner.lr'"),
        ({"name": "x", "sizes": "abc"}, "'sizes'"),
        ({}, "'name' is required"),
    ],
)
def test_config_errors_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_dict(Outer, data)


def test_config_roundtrip_yaml(tmp_path: Path) -> None:
    cfg = from_dict(Outer, {"name": "x", "mode": "b"})
    path = cfg.save(tmp_path / "c.yaml")
    again = load_config(Outer, path, overrides={"inner.lr": "0.5"})
    assert again.mode == "b" and again.inner.lr == 0.5


def test_atomic_path_removes_partial_output_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(Cancelled), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise Cancelled()
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"full")
    assert target.read_bytes() == b"full" and len(list(tmp_path.iterdir())) == 1


def test_atomic_path_gives_outputs_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"x")
        tmp.chmod(0o600)  # as safetensors writes it
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_dir_replaces_only_on_success(tmp_path: Path) -> None:
    final = tmp_path / "ds"
    with atomic_dir(final) as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(final) as d:
        (d / "b").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in final.iterdir()) == [".canopygaps-output.json", "a"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_reporter_cancel_and_subranges() -> None:
    events: list[dict] = []
    flag = {"stop": False}
    rep = CallbackReporter(events.append, lambda: flag["stop"])
    rep.sub(0.5, 1.0, "b").progress(0.5)
    assert events[-1] == {"event": "progress", "value": 0.75, "stage": "b"}
    flag["stop"] = True
    with pytest.raises(Cancelled):
        rep.progress(0.9)


def test_jsonl_reporter_writes_one_object_per_line() -> None:
    buf = io.StringIO()
    rep = JsonLinesReporter(buf, min_interval=0)
    rep.log("hi")
    rep.progress(1.0, "x")
    lines = [json.loads(s) for s in buf.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["log", "progress"]


def test_request_diagnostics_and_unknown_command() -> None:
    info = run_request({"command": "diagnostics", "params": {}})
    assert info["engine"] and info["numpy"]
    with pytest.raises(ConfigError, match="valid commands"):
        run_request({"command": "nope"})


def test_cli_jsonl_error_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["request", "--jsonl", "--json", json.dumps({"command": "diagnostics", "params": {"x": 1}})]
    )
    out = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert rc == 1 and out[-1]["event"] == "error" and "'x'" in out[-1]["message"]
    assert main(["diagnostics", "--jsonl"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["event"] == "result"


def test_low_surface_is_tile_independent() -> None:
    rng = np.random.default_rng(0)
    h, w = 300, 260
    yy, xx = np.mgrid[0:h, 0:w]
    dsm = (0.05 * xx + 0.02 * yy + rng.uniform(0, 30, (h, w))).astype(np.float32)
    valid = np.ones_like(dsm, dtype=bool)
    valid[:40, :40] = False
    cfg = NormalisationConfig(window_m=32.0)
    surface = low_surface_from_array(dsm, valid, 1.0, cfg)
    whole = normalise_window(dsm, valid, surface, 0, 0, cfg)
    part = normalise_window(dsm[100:228, 50:178], valid[100:228, 50:178], surface, 100, 50, cfg)
    np.testing.assert_array_equal(whole[100:228, 50:178], part)
    assert np.all(whole[:40, :40] == 0)
    # the low surface follows the slope: normalised heights stay within the canopy range
    assert np.percentile(whole[valid] * cfg.scale, 1) > -3


def test_low_surface_sample_equals_bilinear_formula() -> None:
    """The row-blocked, separable sampling gives the 2-D bilinear formula's values bit for bit
    (the shipped model was trained on them), also past the raster's edges."""
    from engine.data.normalise import LowSurface

    rng = np.random.default_rng(5)
    grid = rng.normal(300, 20, (9, 11)).astype(np.float32)
    surface = LowSurface(grid, 32, 9 * 32 - 5, 11 * 32 - 7)
    for row_off, col_off, h, w in [(-40, -35, 400, 450), (100, 90, 64, 200), (250, 300, 90, 80)]:
        rows = (np.arange(row_off, row_off + h, dtype=np.float64) + 0.5) / 32 - 0.5
        cols = (np.arange(col_off, col_off + w, dtype=np.float64) + 0.5) / 32 - 0.5
        rows, cols = np.clip(rows, 0, 8), np.clip(cols, 0, 10)
        r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
        r1, c1 = np.minimum(r0 + 1, 8), np.minimum(c0 + 1, 10)
        fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
        g = grid.astype(np.float64)
        top = g[r0][:, c0] * (1 - fc) + g[r0][:, c1] * fc
        bottom = g[r1][:, c0] * (1 - fc) + g[r1][:, c1] * fc
        want = (top * (1 - fr) + bottom * fr).astype(np.float32)
        np.testing.assert_array_equal(surface.sample(row_off, col_off, h, w), want)


def test_strip_percentiles_equal_numpy_per_block() -> None:
    """The vectorised low-surface percentiles are numpy's, value for value (models depend on it)."""
    from engine.data.normalise import block_percentile, strip_percentiles

    rng = np.random.default_rng(0)
    for _ in range(200):
        block = int(rng.integers(4, 40))
        h, w = int(rng.integers(1, block + 1)), int(rng.integers(1, 5 * block))
        values = rng.normal(200, 30, (h, w)).astype(np.float32)
        valid = rng.random((h, w)) > rng.choice([0.0, 0.3, 0.9, 1.0])
        p = float(rng.choice([0.0, 0.5, 2.0, 37.3, 50.0, 100.0]))
        got = strip_percentiles(values, valid, block, p)
        for j, value in enumerate(got):
            sl = np.s_[:, j * block : (j + 1) * block]
            want = np.float32(block_percentile(values[sl], valid[sl], p))
            assert (np.isnan(want) and np.isnan(value)) or want == value
