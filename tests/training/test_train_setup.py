"""The pieces ``run_train`` is built from: head arguments from feature channels, thresholds,
class balance from the manifest, and the refusal to resume with changed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.config.base import from_dict, to_dict
from engine.errors import ConfigError
from engine.features.spec import FeatureSpec
from engine.models.config import ModelConfig
from engine.training.config import TrainConfig
from engine.training.datasets import choose_thresholds, gap_fractions
from engine.training.feature_args import OPENNESS_PERCENTILE, with_feature_args
from engine.training.resume import check_resume_settings

THRESHOLDS = [2.0, 5.0, 10.0]


def _feature_dataset(folder: Path, spec: FeatureSpec) -> dict[str, Any]:
    """A train split whose openness channel holds 0..1 ramps and whose tiles have nodata where
    the openness would be smallest; returns the manifest."""
    rng = np.random.default_rng(3)
    inputs = rng.random((6, spec.channels, 8, 8)).astype(np.float32)
    labels = np.zeros((6, len(THRESHOLDS), 8, 8), np.uint8)
    labels[:, :, :2] = 255  # nodata rows: their (small) openness must not count
    inputs[:, spec.openness_channel, :2] = -1.0
    (folder / "train").mkdir(parents=True)
    np.save(folder / "train" / "inputs.npy", inputs)
    np.save(folder / "train" / "labels.npy", labels)
    return {"features": to_dict(spec), "thresholds": THRESHOLDS}


def test_ground_residual_gets_channels_and_openness_floor_from_the_dataset(tmp_path: Path) -> None:
    spec = FeatureSpec(windows_m=[5.0, 9.0], thresholds=[2.0, 5.0, 10.0, 15.0])
    manifest = _feature_dataset(tmp_path, spec)
    model = ModelConfig(args={"base_channels": 4, "head": "ground_residual"})
    head_args = with_feature_args(model, manifest, THRESHOLDS, tmp_path).args["head_args"]
    first = 2 * len(spec.windows_m) + 1  # adaptive heights follow windows and openness
    assert head_args["base_channels"] == [first, first + 1, first + 2]
    assert head_args["height_channel"] == first + 2  # the threshold nearest 10 m
    assert head_args["openness_channel"] == spec.openness_channel == 4
    inputs = np.load(tmp_path / "train" / "inputs.npy")
    valid = inputs[:, 4, 2:]  # the nodata rows are left out
    expected = float(np.percentile(valid, OPENNESS_PERCENTILE))
    assert head_args["openness_floor"] == pytest.approx(expected) and expected > 0


def test_openness_guard_off_other_heads_and_datasets_without_features(tmp_path: Path) -> None:
    spec = FeatureSpec(windows_m=[5.0], thresholds=THRESHOLDS)
    manifest = _feature_dataset(tmp_path, spec)
    off = ModelConfig(args={"head": "ground_residual", "openness_guard": False})
    args = with_feature_args(off, manifest, THRESHOLDS, tmp_path).args
    assert "openness_guard" not in args
    assert set(args["head_args"]) == {"base_channels", "height_channel"}
    plain = ModelConfig(args={"head": "cumulative"})
    assert with_feature_args(plain, manifest, THRESHOLDS, tmp_path) is plain
    with pytest.raises(ConfigError, match="feature channels"):
        with_feature_args(off, {"thresholds": THRESHOLDS}, THRESHOLDS)


def test_gap_fractions_are_tile_weighted_and_none_when_unknown() -> None:
    sites = [
        {"tiles": 3, "gap_fraction": {"2": 0.1, "5": 0.2}},
        {"tiles": 1, "gap_fraction": {"2": 0.5, "5": 0.6}},
    ]
    assert gap_fractions({"sites": sites}, [2.0, 5.0]) == pytest.approx([0.2, 0.3])
    assert gap_fractions({"sites": sites}, [2.0, 10.0]) is None
    assert gap_fractions({"sites": []}, [2.0]) is None


def _config(tmp_path: Path, **over: Any) -> TrainConfig:
    params = {"dataset": str(tmp_path), "output": str(tmp_path / "m.safetensors"), **over}
    return from_dict(TrainConfig, params)


def test_choose_thresholds(tmp_path: Path) -> None:
    assert choose_thresholds(_config(tmp_path), [10.0, 2.0], False) == [2.0, 10.0]
    assert choose_thresholds(_config(tmp_path, thresholds=[10, 2]), THRESHOLDS, False) == [2, 10]
    assert choose_thresholds(_config(tmp_path, thresholds=[7]), THRESHOLDS, True) == [7.0]
    with pytest.raises(ConfigError, match=r"\[7.0\] not in the dataset"):
        choose_thresholds(_config(tmp_path, thresholds=[7]), THRESHOLDS, False)


def test_resume_refuses_changed_settings_but_not_more_epochs(tmp_path: Path) -> None:
    saved = tmp_path / "config.yaml"
    _config(tmp_path, batch_size=4, epochs=2).save(saved)
    check_resume_settings(_config(tmp_path, batch_size=4, epochs=5), saved)
    changed = _config(tmp_path, batch_size=2, optimizer={"lr": 0.5})
    with pytest.raises(ConfigError) as err:
        check_resume_settings(changed, saved)
    assert "batch_size: 4 -> 2" in str(err.value) and "optimizer.lr: " in str(err.value)
    check_resume_settings(changed, tmp_path / "absent.yaml")  # nothing recorded: no check
