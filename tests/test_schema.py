"""The engine's parameter schema: declared bounds, flattened keys, and the plugin's copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config.base import Bounds, at_least, between, fraction, non_negative, positive
from engine.config.schema import engine_schema, main, schema_text
from engine.errors import ConfigError

PLUGIN_SCHEMA = Path(__file__).resolve().parents[1] / "chm_plugin" / "engine_schema.json"


def test_bounds_checks() -> None:
    assert positive(0) == "must be greater than 0." and positive(1e-9) is None
    assert non_negative(-1) == "must not be negative." and non_negative(0) is None
    assert fraction(1.5) == "must be between 0 and 1." and fraction(1) is None
    assert at_least(2)(1) == "must be 2 or more." and at_least(2)(2) is None
    assert between(0.5, 1)(0.4) and between(0.5, 1)(0.5) is None
    assert Bounds(maximum=3)(4) == "must be 3 or less."
    assert positive(None) is None  # optional fields


def test_schema_entries() -> None:
    fields = engine_schema()["commands"]
    infer = fields["infer"]["fields"]
    assert infer["tile_size"] == {
        "type": "integer",
        "nullable": False,
        "required": False,
        "default": 512,
        "help": infer["tile_size"]["help"],
        "minimum": 0,
        "exclusive_minimum": True,
    }
    assert infer["dsm"]["required"] and "default" not in infer["dsm"]
    assert infer["runtime"]["choices"] == ["auto", "torch", "onnxruntime"]
    assert infer["band"]["nullable"] and infer["band"]["default"] is None
    assert infer["thresholds"]["items"] == "number"
    train = fields["train"]["fields"]
    assert train["optimizer.lr"]["exclusive_minimum"]
    assert train["model.args.depth"]["default"] == 4 and train["model.args.depth"]["minimum"] == 1
    assert "unet" in train["model.name"]["choices"]
    assert "focal_dice" in train["loss.name"]["choices"]
    prep = fields["preprocess"]["fields"]
    assert prep["split.block_tiles"]["minimum"] == 1
    assert prep["sites[].dtm"]["type"] == "path"
    assert fields["evaluate"]["fields"]["min_iou"]["minimum"] == 0.5


def test_model_args_are_checked() -> None:
    from engine.config.base import from_dict
    from engine.models.config import ModelConfig

    with pytest.raises(ConfigError, match=r"model\.args\.depth.*1 or more"):
        from_dict(ModelConfig, {"args": {"depth": 0}})
    with pytest.raises(ConfigError, match="integer"):
        from_dict(ModelConfig, {"args": {"base_channels": 8.5}})
    assert from_dict(ModelConfig, {"args": {"depth": 3}}).args == {"depth": 3}


def test_plugin_copy_is_up_to_date() -> None:
    """chm_plugin/engine_schema.json is a fresh export (regenerate it with
    'python -m engine.config.schema --output chm_plugin/engine_schema.json'). Exported in a
    fresh process, as at package time: test modules register extra models in this one."""
    root = PLUGIN_SCHEMA.parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "engine.config.schema"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert PLUGIN_SCHEMA.read_text(encoding="utf-8") == done.stdout


def test_check_flags_a_stale_file(tmp_path: Path) -> None:
    stale = json.loads(schema_text())
    stale["commands"]["infer"]["fields"]["tile_size"]["default"] = 256
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(stale), encoding="utf-8")
    assert main(["--check", str(path)]) == 1
    assert main(["--output", str(path)]) == 0 and main(["--check", str(path)]) == 0
