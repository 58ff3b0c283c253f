"""runtime=onnxruntime: same masks as torch, auto choice, missing package, cache, seams."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from engine.api import run
from engine.data.config import NormalisationConfig
from engine.data.normalise import low_surface_from_array, normalise_window
from engine.data.tiling import TilePlan, auto_margin
from engine.errors import ConfigError, MissingDependencyError
from engine.events import CallbackReporter
from engine.features.inputs import LowSurfaceTransform
from engine.inference import onnx_predictor
from engine.inference.device import choose_device
from engine.inference.onnx_predictor import OnnxPredictor, cache_name
from engine.inference.predictor import Predictor
from engine.inference.stream import predict_bands, predict_whole
from engine.models import build_model
from engine.models.modelfile import load_model

from .helpers import NORM, files_in, save, smooth_dsm, tiny_unet

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def film_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny threshold-conditioned FiLM U-Net whose thresholds change the output."""
    torch.manual_seed(1)
    model = build_model("film_unet", base_channels=4, depth=3, thresholds=[2.0, 5.0, 10.0])
    with torch.no_grad():
        for film in model.films:
            film.to_params.weight.normal_(0, 0.3)
    return save(model.eval(), tmp_path_factory.mktemp("models") / "film.safetensors")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ONNX cache for this test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CANOPYGAPS_CACHE", str(folder))
    return folder / "onnx"


def _infer(
    dsm: Path, model: Path, out: Path, events: list[dict[str, Any]] | None = None, **kw: Any
) -> dict[str, Any]:
    params = {"dsm": str(dsm), "model": str(model), "output": str(out), "tile_size": 64, **kw}
    reporter = CallbackReporter(events.append) if events is not None else None
    return run("infer", params, reporter)


def _read(path: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


@pytest.mark.parametrize(
    ("model", "thresholds"),
    [("unet", None), ("unet", [10.0, 2.0]), ("film", [3.0, 7.5, 12.0])],
)
def test_onnxruntime_equals_torch(
    tmp_path: Path,
    unet_file: Path,
    film_file: Path,
    dsm_file: Callable[..., Path],
    model: str,
    thresholds: list[float] | None,
) -> None:
    dsm = smooth_dsm(100, 130, seed=2)
    dsm[5:12, 40:60] = np.nan
    path = dsm_file("dsm.tif", dsm)
    model_path = unet_file if model == "unet" else film_file
    res = {}
    for runtime in ("torch", "onnxruntime"):
        res[runtime] = _infer(
            path,
            model_path,
            tmp_path / f"{runtime}.tif",
            runtime=runtime,
            precision="fp32",
            thresholds=thresholds,
            probabilities=str(tmp_path / f"{runtime}_p.tif"),
        )
        assert res[runtime]["runtime"] == runtime and res[runtime]["precision"] == "fp32"
    masks = {k: _read(r["output"]) for k, r in res.items()}
    probs = {k: _read(r["probabilities"]) for k, r in res.items()}
    assert masks["torch"].shape == (len(thresholds or [2, 5, 10]), 100, 130)
    assert (masks["torch"] == masks["onnxruntime"]).mean() >= 0.9999
    assert np.array_equal(np.isnan(probs["torch"]), np.isnan(probs["onnxruntime"]))
    diff = np.nan_to_num(probs["torch"] - probs["onnxruntime"])
    assert np.abs(diff).max() < 1e-4
    if model == "film":  # the requested thresholds were really fed to the graph
        assert not np.allclose(
            np.nan_to_num(probs["onnxruntime"][0]), np.nan_to_num(probs["onnxruntime"][2])
        )


def test_auto_picks_onnxruntime_on_cpu(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], cache: Path
) -> None:
    events: list[dict[str, Any]] = []
    res = _infer(dsm_file("dsm.tif", smooth_dsm(70, 80)), unet_file, tmp_path / "g.tif", events)
    assert res["runtime"] == "onnxruntime" and res["precision"] == "fp32"
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("runtime=onnxruntime" in m and "precision fp32" in m for m in logs)
    assert any("exported the model" in m for m in logs)
    # bf16 asked for explicitly: auto stays with torch; explicit onnxruntime refuses it
    res = _infer(
        dsm_file("d2.tif", smooth_dsm(70, 80)), unet_file, tmp_path / "h.tif", precision="bf16"
    )
    assert res["runtime"] == "torch"
    with pytest.raises(ConfigError, match="fp32 only"):
        _infer(
            dsm_file("d3.tif", smooth_dsm(70, 80)),
            unet_file,
            tmp_path / "i.tif",
            precision="bf16",
            runtime="onnxruntime",
        )


def test_missing_onnxruntime(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dsm_file("dsm.tif", smooth_dsm(70, 80))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    out = tmp_path / "out"
    with pytest.raises(MissingDependencyError) as info:
        _infer(path, unet_file, out / "g.tif", runtime="onnxruntime")
    assert "pip install onnxruntime" in info.value.hint
    assert not out.exists() or files_in(out) == []
    res = _infer(path, unet_file, out / "g.tif", precision="fp32")  # auto falls back to torch
    assert res["runtime"] == "torch" and Path(res["output"]).exists()


def _counting_export(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    import engine.models.export as export

    calls: list[Path] = []
    real = export.export_onnx

    def spy(*args: Any, **kw: Any) -> Any:
        calls.append(Path(args[1]))
        return real(*args, **kw)

    monkeypatch.setattr(export, "export_onnx", spy)
    return calls


def test_cache_reused_and_corrupt_file_replaced(
    tmp_path: Path,
    unet_file: Path,
    dsm_file: Callable[..., Path],
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _counting_export(monkeypatch)
    path = dsm_file("dsm.tif", smooth_dsm(70, 80))
    first = _infer(path, unet_file, tmp_path / "a.tif", runtime="onnxruntime")
    cached = cache / cache_name(unet_file)
    assert first["onnx_cache"] == str(cached) and cached.is_file()
    assert first["onnx_cache_hit"] is False and first["onnx_export_seconds"] > 0
    stamp = cached.stat().st_mtime_ns
    second = _infer(path, unet_file, tmp_path / "b.tif", runtime="onnxruntime")
    assert len(calls) == 1 and second["onnx_cache_hit"] is True
    assert cached.stat().st_mtime_ns == stamp
    assert np.array_equal(_read(first["output"]), _read(second["output"]))
    good = cached.read_bytes()
    for corrupt in (b"not an onnx file" * 10, good[: len(good) // 2]):
        cached.write_bytes(corrupt)
        events: list[dict[str, Any]] = []
        res = _infer(path, unet_file, tmp_path / "c.tif", events, runtime="onnxruntime")
        assert res["onnx_cache_hit"] is False
        assert any(
            e.get("level") == "warning" and "exporting again" in e["message"]
            for e in events
            if e["event"] == "log"
        )
        assert cached.stat().st_size == len(good)
        assert np.array_equal(_read(first["output"]), _read(res["output"]))
    assert len(calls) == 3
    assert [p.name for p in cache.iterdir()] == [cached.name]  # no temp files left


def test_cache_hit_does_not_import_onnx(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], cache: Path
) -> None:
    """With the export cached, a run needs onnxruntime only (``onnx`` takes 25 ms to import)."""
    import json
    import os
    import subprocess

    path = dsm_file("dsm.tif", smooth_dsm(70, 80))
    _infer(path, unet_file, tmp_path / "a.tif", runtime="onnxruntime")
    code = (
        "import json, sys; from engine.api import run; "
        f"r = run('infer', {{'dsm': {str(path)!r}, 'model': {str(unet_file)!r}, "
        f"'output': {str(tmp_path / 'b.tif')!r}, 'tile_size': 64}}); "
        "print(json.dumps([r['runtime'], r['onnx_cache_hit'], 'onnx' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["onnxruntime", True, False]


def test_unwritable_cache_exports_for_the_run(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("CANOPYGAPS_CACHE", str(blocker / "cache"))  # cannot be created
    calls = _counting_export(monkeypatch)
    path = dsm_file("dsm.tif", smooth_dsm(70, 80))
    res = _infer(path, unet_file, tmp_path / "g.tif", runtime="onnxruntime")
    assert res["runtime"] == "onnxruntime" and res["onnx_cache"] is None
    assert len(calls) == 1 and not calls[0].exists()  # the temporary export is gone


@pytest.mark.parametrize(("blend", "ramp"), [("crop", 0), ("ramp", 8)])
def test_tiled_equals_whole_image_onnxruntime(unet_file: Path, blend: str, ramp: int) -> None:
    h, w = 150, 170
    dsm = smooth_dsm(h, w, seed=3)
    valid = np.ones((h, w), bool)
    valid[:6, :9] = False
    norm = NormalisationConfig(**NORM)
    surface = low_surface_from_array(dsm, valid, 1.0, norm)
    model, desc = load_model(unet_file)
    choice = choose_device("cpu", "fp32")
    pred = OnnxPredictor.from_model(model, desc, unet_file, desc.thresholds, choice)
    plan = TilePlan(h, w, tile=64, margin=auto_margin(3, 64), ramp=ramp, multiple=8)
    x = normalise_window(dsm, valid, surface, 0, 0, norm)
    whole = predict_whole(x, pred, plan.lead, 8)
    tiled = np.full_like(whole, np.nan)
    for start, stop, logits, _ in predict_bands(
        lambda r, c, hh, ww: _window(dsm, valid, r, c, hh, ww),
        plan,
        _transform(norm, surface),
        pred,
        2,
    ):
        tiled[:, start:stop] = logits
    assert pred.tiles == plan.n_tiles + 1 and pred.forward_seconds > 0
    assert np.isfinite(tiled).all()
    assert np.abs(tiled - whole).max() <= 1e-4 * float(np.ptp(whole))
    assert ((tiled > 0) == (whole > 0)).mean() >= 0.999
    torch_whole = predict_whole(x, Predictor(tiny_unet(), desc.thresholds, choice), plan.lead, 8)
    assert np.abs(torch_whole - whole).max() < 1e-4


def _window(
    dsm: np.ndarray, valid: np.ndarray, r: int, c: int, hh: int, ww: int
) -> tuple[np.ndarray, np.ndarray]:
    h, w = dsm.shape
    v = np.full((hh, ww), np.nan, np.float32)
    ok = np.zeros((hh, ww), bool)
    r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + hh, h), min(c + ww, w)
    if r1 > r0 and c1 > c0:
        v[r0 - r : r1 - r, c0 - c : c1 - c] = dsm[r0:r1, c0:c1]
        ok[r0 - r : r1 - r, c0 - c : c1 - c] = valid[r0:r1, c0:c1]
    return v, ok


def test_command_tiled_equals_whole_image_onnxruntime(
    tmp_path: Path, unet_file: Path, dsm_file: Callable[..., Path]
) -> None:
    h, w = 120, 140
    dsm = smooth_dsm(h, w, seed=5)
    res = _infer(dsm_file("dsm.tif", dsm), unet_file, tmp_path / "g.tif", runtime="onnxruntime")
    assert res["runtime"] == "onnxruntime" and res["rasters"][0]["tiles"] > 4
    norm = NormalisationConfig(**NORM)
    valid = np.ones((h, w), bool)
    x = normalise_window(dsm, valid, low_surface_from_array(dsm, valid, 1.0, norm), 0, 0, norm)
    model, desc = load_model(unet_file)
    choice = choose_device("cpu", "fp32")
    pred = OnnxPredictor.from_model(model, desc, unet_file, desc.thresholds, choice)
    whole = (predict_whole(x, pred, auto_margin(3, 64), 8) > 0).astype(np.uint8)
    assert (_read(res["output"]) == whole).mean() >= 0.999


def test_resolve_runtime_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = choose_device("cpu", "fp32")
    assert onnx_predictor.resolve_runtime("auto", "auto", cpu) == "onnxruntime"
    assert onnx_predictor.resolve_runtime("auto", "fp16", cpu) == "torch"
    assert onnx_predictor.resolve_runtime("torch", "fp32", cpu) == "torch"
    gpu = dataclasses.replace(cpu, device="cuda")
    assert onnx_predictor.resolve_runtime("auto", "auto", gpu) == "torch"
    with pytest.raises(ConfigError, match="CPU only"):
        onnx_predictor.resolve_runtime("onnxruntime", "auto", gpu)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert onnx_predictor.resolve_runtime("auto", "auto", cpu) == "torch"


def _transform(norm: NormalisationConfig, surface: object) -> LowSurfaceTransform:
    """The legacy input transform with its low surface already computed."""
    transform = LowSurfaceTransform(norm, 1.0)
    transform.surface = surface  # type: ignore[assignment]
    return transform
