"""Model files: safetensors + JSON round trip, corrupt and foreign files, never pickle."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch

from engine import __version__
from engine.errors import ModelFileError
from engine.models import ModelDescription, build_model, load_model, read_description, save_model
from engine.models.modelfile import FORMAT_VERSION, METADATA_KEY
from engine.models.regularisation import apply_spectral_norm

TINY = {"base_channels": 4, "depth": 2}


def _describe(model: torch.nn.Module) -> ModelDescription:
    return ModelDescription.from_model(
        model,
        tile_size=32,
        pixel_size=0.5,
        normalisation={"method": "local_low_percentile", "scale": 10.0},
        training={"epochs": 1},
        metrics={"iou@5m": 0.5, "bad": float("nan")},
    )


def _save(tmp_path: Path, name: str = "unet", **args: object) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(name, **{**TINY, **args})
    model.train()
    model(torch.randn(4, 1, 16, 16))  # move BN running stats away from their defaults
    model.eval()
    path = tmp_path / "m.safetensors"
    save_model(path, model, _describe(model))
    return model, path


@pytest.mark.parametrize("name", ["unet", "film_unet", "resunet_attention", "deeplab_lite"])
def test_round_trip_identical_outputs(tmp_path: Path, name: str) -> None:
    model, path = _save(tmp_path, name)
    loaded, desc = load_model(path)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not loaded.training
    assert desc.architecture == model.architecture and desc.thresholds == model.thresholds
    assert desc.format == "canopygaps-model" and desc.format_version == FORMAT_VERSION == 2
    assert desc.engine_version == __version__ and desc.tile_size == 32 and desc.pixel_size == 0.5
    assert desc.output_kind == model.output_kind and desc.conditioned == model.conditioned
    assert desc.metrics == {"iou@5m": 0.5, "bad": None}
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar == desc.to_dict() == read_description(path).to_dict()
    assert not list(tmp_path.glob(".*part*"))  # atomic write left nothing behind


def test_half_precision_weights_halve_the_file_and_load_as_float32(tmp_path: Path) -> None:
    model, path = _save(tmp_path, "unet", base_channels=8)
    half = tmp_path / "half.safetensors"
    save_model(half, model, _describe(model), weights_dtype="float16")
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded, _ = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0.05, rtol=0.01)
    with pytest.raises(ModelFileError, match="weights_dtype"):
        save_model(half, model, _describe(model), weights_dtype="int8")


def test_spectral_norm_and_group_norm_models_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("unet", norm="group", **TINY)
    apply_spectral_norm(model)
    model(torch.randn(2, 1, 16, 16))  # one power iteration
    model.eval()
    path = tmp_path / "sn.safetensors"
    save_model(path, model, _describe(model))
    loaded, _ = load_model(path)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-5)


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = _save(tmp_path)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle/torch.load must never be used")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    monkeypatch.setattr(torch, "load", boom)
    load_model(path)


def test_pickle_disguised_as_safetensors_is_rejected(tmp_path: Path) -> None:
    model = build_model("unet", **TINY)
    pt = tmp_path / "evil.safetensors"
    torch.save(model.state_dict(), pt)
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(pt)
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(ModelFileError, match="never loads pickles"):
        load_model(raw)


def test_missing_random_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    rnd = tmp_path / "random.safetensors"
    rnd.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        read_description(rnd)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(ModelFileError, match="not a safetensors"):
        load_model(tiny)
    _, path = _save(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(cut)
    garbled = bytearray(data)
    garbled[10:20] = b"\xff" * 10  # break the JSON header
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(garbled))
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(bad)


def _rewrite_description(path: Path, out: Path, change: dict[str, object]) -> None:
    """Copy a model file with an edited description (header rewritten by hand)."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    desc = json.loads(header["__metadata__"][METADATA_KEY])
    desc.update(change)
    header["__metadata__"][METADATA_KEY] = json.dumps(desc)
    raw = json.dumps(header).encode()
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_foreign_newer_unknown_and_mismatched(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="not a canopygaps model"):
        load_model(foreign)
    _, path = _save(tmp_path)
    newer = tmp_path / "newer.safetensors"
    _rewrite_description(path, newer, {"format_version": 99})
    with pytest.raises(ModelFileError, match="version 99") as err:
        load_model(newer)
    assert "Update" in err.value.hint
    unknown = tmp_path / "unknown.safetensors"
    _rewrite_description(path, unknown, {"architecture": {"name": "vit_huge", "args": {}}})
    with pytest.raises(ModelFileError, match=r"'vit_huge'.*available: .*unet"):
        load_model(unknown)
    wider = tmp_path / "wider.safetensors"
    _rewrite_description(
        path, wider, {"architecture": {"name": "unet", "args": {**TINY, "base_channels": 8}}}
    )
    with pytest.raises(ModelFileError, match="wrong shape"):
        load_model(wider)
    deeper = tmp_path / "deeper.safetensors"
    _rewrite_description(
        path, deeper, {"architecture": {"name": "unet", "args": {**TINY, "depth": 3}}}
    )
    with pytest.raises(ModelFileError, match="missing"):
        load_model(deeper)


def test_save_requires_safetensors_suffix(tmp_path: Path) -> None:
    model = build_model("unet", **TINY)
    with pytest.raises(ModelFileError, match=r"\.safetensors"):
        save_model(tmp_path / "m.pt", model, _describe(model))
