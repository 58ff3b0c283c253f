"""recipe and crossval on seeded synthetic sites: products, table, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.api import run


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scenes")
    out = {}
    for i, name in enumerate(("a", "b", "c")):
        run("synth", {"output": str(root / name), "size": 96, "seed": i + 1, "relief_m": 8})
        out[name] = root / name
    return out


def _config(scenes: dict[str, Path], out: Path) -> dict[str, Any]:
    return {
        "output": str(out),
        "sites": [
            {"name": n, "dsm": str(p / "dsm.tif"), "dtm": str(p / "dtm.tif")}
            for n, p in scenes.items()
        ],
        "thresholds": [2, 5, 10],
        "dataset": {
            "tile_size": 32,
            "features": {"windows_m": [5, 9]},
            "split": {"val_fraction": 0.2, "test_fraction": 0.0, "block_tiles": 1},
            "terrain_copies": 1,
        },
        "train": {
            "epochs": 1,
            "max_steps": 3,
            "batch_size": 2,
            "model": {"args": {"base_channels": 4, "depth": 2, "head": "ground_residual"}},
            "loss": {"height_weight": 0.1},
        },
    }


def test_crossval_table_and_resume(scenes: dict[str, Path], tmp_path: Path) -> None:
    cfg = {**_config(scenes, tmp_path / "cv"), "folds": ["a", "b"]}
    cfg["openness_floor"] = [0.25, 0.0, 0.1]  # one per threshold
    result = run("crossval", cfg)
    doc = json.loads(Path(result["json"]).read_text())
    assert set(doc["sites"]) == {"a", "b"}
    for site in doc["sites"].values():
        assert set(site) == {"model", "classical", "ref21"}
        assert all(len(v) == 3 and all(0 <= x <= 1 for x in v) for v in site.values())
    assert doc["wins"]["cells"] == 6
    md = Path(result["markdown"]).read_text()
    assert "| a | ref21 |" in md and "**mean**" in md
    fold = tmp_path / "cv" / "fold-a"
    assert (fold / "classical.yaml").is_file() and (fold / "dataset" / "manifest.json").is_file()
    manifest = json.loads((fold / "dataset" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["sites"]] == ["b", "c"]  # never trains on its site
    assert manifest["features"]["adaptive"] == _adaptive(fold)
    model = fold / "model.safetensors"
    from engine.models.modelfile import read_description

    head_args = read_description(model).architecture["args"]["head_args"]
    assert head_args["openness_floor"] == [0.25, 0.0, 0.1]  # every setting reaches the folds
    stamp = model.stat().st_mtime_ns
    again = run("crossval", cfg)  # resumes: every product exists
    assert model.stat().st_mtime_ns == stamp
    assert again["mean"] == result["mean"]


def _adaptive(fold: Path) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((fold / "classical.yaml").read_text())["adaptive"])


def test_untrained_ground_residual_model_is_the_classical_method(
    scenes: dict[str, Path],
) -> None:
    """Corrections start at zero: the untrained model's masks are the adaptive method's."""
    import torch

    from engine.features.ground import GroundStack, adaptive_heights
    from engine.features.spec import FeatureSpec, base_channels
    from engine.inference.classical_core import gap_masks
    from engine.io.raster import read_array
    from engine.models.registry import build_model

    dsm, valid = read_array(scenes["a"] / "dsm.tif")
    spec = FeatureSpec(thresholds=[2.0, 5.0, 10.0])
    x = spec.compute(dsm, valid, 1.0)
    bases = base_channels(spec, spec.thresholds)
    model = build_model(
        "unet",
        in_channels=spec.channels,
        base_channels=4,
        depth=2,
        thresholds=spec.thresholds,
        head="ground_residual",
        head_args={"base_channels": bases, "height_channel": bases[1]},
    ).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x[None, :, :96, :96])).numpy()[0]
    heights = adaptive_heights(GroundStack(dsm, valid, 1.0), spec.adaptive, spec.thresholds)
    expected = gap_masks(heights, spec.thresholds)[:, :96, :96]
    ok = expected != 255
    assert ((logits > 0) == (expected == 1))[ok].mean() > 0.999


def test_openness_guard_returns_the_classical_answer_in_closed_canopy() -> None:
    """Below the openness floor the corrections vanish; above twice it they apply, bounded."""
    import torch

    from engine.models.heads import GroundResidualHead

    head = GroundResidualHead(
        4, [2.0, 5.0], [1, 2], 2, openness_channel=0, openness_floor=0.05, max_correction=3.0
    )
    torch.nn.init.constant_(head.conv.bias, 10.0)  # a large correction everywhere
    x = torch.zeros(1, 3, 2, 2)
    x[0, 1] = 0.1  # adaptive heights 1 m (threshold 2 m) and 2 m (threshold 5 m)
    x[0, 2] = 0.2
    x[0, 0] = torch.tensor([[0.0, 0.04], [0.1, 0.2]])  # openness: closed, closed, open, open
    features = torch.zeros(1, 4, 2, 2)
    logits = head(features, None, x)
    base = torch.tensor([2.0 - 1.0, 5.0 - 2.0]).reshape(2, 1)
    flat = logits[0].reshape(2, 4)
    assert torch.allclose(flat[:, :2], base.expand(2, 2), atol=0.01)  # closed: classical
    assert torch.all(flat[:, 2:] > base + 2.9) and torch.all(flat[:, 2:] <= base + 3.01)


def test_openness_floor_is_set_on_the_model_and_its_report_redone(
    scenes: dict[str, Path], tmp_path: Path
) -> None:
    """The recipe's guard lands in the model file (weights untouched); changing it re-evaluates."""
    import torch
    from safetensors.torch import load_file

    from engine.models.modelfile import load_model, read_description

    cfg = _config(scenes, tmp_path / "r")
    cfg["sites"], held = cfg["sites"][:2], cfg["sites"][2]
    cfg["held_out"] = [{"name": "c", "dsm": held["dsm"], "reference_dtm": held["dtm"]}]
    cfg["openness_floor"] = 0.25
    result = run("recipe", cfg)
    model = Path(result["model"])
    head_args = read_description(model).architecture["args"]["head_args"]
    assert head_args["openness_floor"] == 0.25 and head_args["openness_channel"] >= 0
    weights = load_file(str(model))
    net, _ = load_model(model)
    assert net.head.openness_floor == 0.25
    metrics = tmp_path / "r" / "report" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    run("recipe", {**cfg, "openness_floor": 0.5})
    assert read_description(model).architecture["args"]["head_args"]["openness_floor"] == 0.5
    assert json.loads(model.with_suffix(".json").read_text())["architecture"] == (
        read_description(model).architecture
    )
    assert all(torch.equal(v, load_file(str(model))[k]) for k, v in weights.items())
    assert metrics.stat().st_mtime_ns != stamp  # the old report described the old guard


def test_openness_guard_per_threshold() -> None:
    """One floor per threshold: a threshold whose floor is 0 is corrected everywhere, one with a
    floor keeps the classical answer where the forest is more closed; the canopy height's
    correction takes the largest floor."""
    import torch

    from engine.models.heads import GroundResidualHead

    head = GroundResidualHead(
        4, [2.0, 5.0], [1, 2], 2, openness_channel=0, openness_floor=[0.05, 0.0]
    )
    torch.nn.init.constant_(head.conv.bias, 10.0)
    x = torch.zeros(1, 3, 1, 2)
    x[0, 1], x[0, 2] = 0.1, 0.2
    x[0, 0] = torch.tensor([[0.0, 0.2]])  # closed, open
    features = torch.zeros(1, 4, 1, 2)
    flat = head(features, None, x)[0].reshape(2, 2)
    assert torch.allclose(flat[0, 0], torch.tensor(1.0), atol=0.01)  # 2 m, closed: classical
    assert flat[0, 1] > 1.0 + 2.9  # 2 m, open: corrected
    assert torch.all(flat[1] > 3.0 + 2.9)  # 5 m, floor 0: corrected even where closed
    height = head.height(features, x)[0, 0]
    assert torch.isclose(height[0, 0], torch.tensor(2.0)) and height[0, 1] > 2.0 + 20.0


def test_openness_guard_rejects_a_wrong_number_of_floors() -> None:
    from engine.errors import ConfigError
    from engine.models.heads import GroundResidualHead

    with pytest.raises(ConfigError, match="one per threshold"):
        GroundResidualHead(4, [2.0, 5.0], [1, 2], 2, openness_channel=0, openness_floor=[0.1])


def test_openness_floor_per_threshold_must_match_the_thresholds(
    scenes: dict[str, Path], tmp_path: Path
) -> None:
    from engine.config.base import from_dict
    from engine.errors import ConfigError
    from engine.recipe.config import CrossvalConfig

    cfg = {**_config(scenes, tmp_path / "cv"), "openness_floor": [0.3, 0.0]}
    with pytest.raises(ConfigError, match="one per threshold"):
        from_dict(CrossvalConfig, cfg)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        from_dict(CrossvalConfig, {**cfg, "openness_floor": [0.3, 0.0, 1.5]})
    assert from_dict(CrossvalConfig, {**cfg, "openness_floor": [0.3, 0, 0]}).openness_floor == [
        0.3,
        0.0,
        0.0,
    ]
