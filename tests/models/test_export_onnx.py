"""ONNX export: dynamic axes, metadata, matches torch (ONNX Runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.api import run
from engine.errors import ConfigError
from engine.models import ModelDescription, build_model, save_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _model_file(tmp_path: Path, name: str) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(name, base_channels=4, depth=2).eval()
    if name == "film_unet":  # make the threshold matter
        with torch.no_grad():
            for film in model.films:
                film.to_params.weight.normal_(0, 0.3)
    path = tmp_path / f"{name}.safetensors"
    save_model(path, model, ModelDescription.from_model(model, tile_size=32, pixel_size=1.0))
    return model, path


@pytest.mark.parametrize("name", ["unet", "film_unet", "deeplab_lite", "resunet_attention"])
def test_export_matches_torch(tmp_path: Path, name: str) -> None:
    model, path = _model_file(tmp_path, name)
    result = run("export", {"model": str(path)})
    out = Path(result["output"])
    assert out == path.with_suffix(".onnx") and out.exists()
    assert result["max_abs_diff"] is not None and result["max_abs_diff"] < 1e-3
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["canopygaps"])["architecture"]["name"] == name
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 16, 24)  # other batch and size than traced
    feeds = {"input": x.numpy()}
    thresholds = [3.0, 12.0] if name == "film_unet" else None
    if thresholds is not None:
        assert result["inputs"] == ["input", "thresholds"]
        feeds["thresholds"] = np.asarray(thresholds, dtype=np.float32)
    (got,) = session.run(["logits"], feeds)
    with torch.no_grad():
        expected = model(x, thresholds).numpy()
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) < 1e-3


def test_export_config_errors(tmp_path: Path) -> None:
    _, path = _model_file(tmp_path, "unet")
    with pytest.raises(ConfigError, match="multiple of 4"):
        run("export", {"model": str(path), "tile_size": 30})
    with pytest.raises(ConfigError, match=r"\.onnx"):
        run("export", {"model": str(path), "output": str(tmp_path / "x.bin")})


@pytest.mark.parametrize("head", ["cumulative", "residual_height"])
def test_export_keeps_the_model_in_its_mode(tmp_path: Path, head: str) -> None:
    """Exporting must not leave an eval model training (BatchNorm would drift on next use)."""
    from engine.models.export import export_onnx

    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, head=head).eval()
    desc = ModelDescription.from_model(model, tile_size=32, pixel_size=1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx", desc, 32)
    assert not model.training and not any(m.training for m in model.modules())
    with torch.no_grad():
        model(torch.randn(2, 1, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_export_ground_residual_with_a_guard_per_threshold(tmp_path: Path) -> None:
    """The shipped head kind with one openness floor per threshold (some 0: never off) exports
    and gives torch's logits where the forest is closed, half open and open."""
    torch.manual_seed(0)
    head_args = {
        "base_channels": [1, 2],
        "height_channel": 2,
        "openness_channel": 0,
        "openness_floor": [0.3, 0.0],
    }
    model = build_model(
        "unet",
        in_channels=3,
        base_channels=4,
        depth=2,
        thresholds=[2.0, 5.0],
        head="ground_residual",
        head_args=head_args,
    ).eval()
    with torch.no_grad():
        model.head.conv.bias.fill_(2.0)
    path = tmp_path / "guarded.safetensors"
    save_model(path, model, ModelDescription.from_model(model, tile_size=32, pixel_size=1.0))
    out = Path(run("export", {"model": str(path)})["output"])
    x = torch.rand(2, 3, 16, 24)
    x[:, 0] = torch.linspace(0.0, 1.0, 24)  # openness from closed to open across the tile
    x[:, 1], x[:, 2] = 0.1, 0.2  # the classical heights: 1 m and 2 m everywhere
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"input": x.numpy()}
    )
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.max(np.abs(got - expected)) < 1e-3
    closed, opened = expected[:, 0, :, 0], expected[:, 0, :, -1]
    assert np.all(opened - closed > 1.0)  # the 2 m guard is off in the open, on where closed
    assert np.allclose(expected[:, 1, :, 0], expected[:, 1, :, -1])  # 5 m: floor 0, never on
