"""scripts/model_card.py: the shipped-schedule cross-validation section says what it measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "scripts" / "model_card.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _crossval(path: Path, model_2m: float) -> str:
    """Two sites, two thresholds; the model's 2 m IoU on site ``a`` is ``model_2m``."""
    doc = {
        "thresholds": [2.0, 5.0],
        "sites": {
            "a": {"model": [model_2m, 0.90], "classical": [0.80, 0.85], "ref21": [0.70, 0.88]},
            "b": {"model": [0.60, 0.95], "classical": [0.60, 0.94], "ref21": [0.50, 0.90]},
        },
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_schedule_check_reports_means_wins_and_losses(tmp_path: Path) -> None:
    card = _script()
    text = card._schedule_check(_crossval(tmp_path / "cv.json", model_2m=0.78))
    assert "| model | 0.6900 | 0.9250 |" in text
    assert "| classical | 0.7000 | 0.8950 |" in text
    assert "above both classical methods in 2 of 4 cells" in text
    assert "-0.0100, +0.0300 IoU at 2, 5 m" in text
    assert "below the classical method's at 2 m" in text


def test_schedule_check_claims_no_loss_on_a_tie(tmp_path: Path) -> None:
    text = _script()._schedule_check(_crossval(tmp_path / "cv.json", model_2m=0.80))
    assert "+0.0000, +0.0300" in text and "below" not in text


def test_schedule_check_says_when_it_did_not_run(tmp_path: Path) -> None:
    assert "Not run" in _script()._schedule_check(str(tmp_path / "missing.json"))
