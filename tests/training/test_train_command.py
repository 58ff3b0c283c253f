"""``train`` command: config validation, end-to-end run, model file, resume, cancel."""

from __future__ import annotations

import json

import pytest

from engine.api import build_config, run
from engine.config.base import from_dict, load_config
from engine.errors import Cancelled, ConfigError
from engine.events import CallbackReporter
from engine.training.command import run_train
from engine.training.config import TrainConfig

from .helpers import write_dataset_folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset_folder(tmp_path_factory.mktemp("ds") / "data", n_train=8, n_val=4)


def _params(dataset, out, **over):
    p = {
        "dataset": str(dataset),
        "output": str(out),
        "model": {"name": "unet", "args": {"base_channels": 4, "depth": 2}},
        "epochs": 2,
        "batch_size": 4,
        "optimizer": {"lr": 0.01},
        "scheduler": {"name": "warmup_cosine", "params": {"warmup_steps": 1}},
        "progress_bar": False,
    }
    p.update(over)
    return p


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"epochz": 3}, "'epochz'"),
        ({"epochs": 0}, "'epochs'"),
        ({"epochs": "many"}, "'epochs'"),
        ({"precision": "fp8"}, "'precision'"),
        ({"optimizer": {"name": "adam"}}, "'optimizer.name'"),
        ({"optimizer": {"lr": 0.1, "beta": 1}}, "'optimizer.beta'"),
        ({"scheduler": {"name": "cosine"}}, "'scheduler.name'"),
        (
            {"scheduler": {"name": "onecycle", "params": {"warmup_steps": 3}}},
            "'scheduler.params.warmup_steps'",
        ),
        ({"model": {"name": "vit"}}, "'model.name'"),
        ({"loss": {"name": "l2"}}, "'loss.name'"),
        ({"output": "model.pt"}, "'output'"),
        ({"resume": "maybe"}, "'resume'"),
        ({"device": "tpu"}, "'device'"),
        ({"early_stopping": {"patience": -1}}, "'early_stopping.patience'"),
    ],
)
def test_config_errors_name_the_key(tmp_path, params, key):
    base = {"dataset": str(tmp_path), "output": str(tmp_path / "m.safetensors"), **params}
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, base)
    assert key in str(err.value)


def test_example_config_is_valid(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "resources" / "configs" / "train-example.yaml"
    cfg = load_config(TrainConfig, example)
    assert cfg.output.suffix == ".safetensors"
    assert build_config("train", cfg.to_dict()) == cfg


def test_train_end_to_end_writes_model_file(dataset, tmp_path):
    from engine.models.modelfile import load_model

    out = tmp_path / "models" / "gaps.safetensors"
    events = []
    result = run(
        "train",
        _params(
            dataset,
            out,
            model={"name": "unet", "norm": "group", "args": {"base_channels": 4, "depth": 2}},
        ),
        CallbackReporter(events.append),
    )
    assert out.is_file() and out.with_suffix(".json").is_file()
    _, desc = load_model(out)
    assert desc.thresholds == [2.0, 5.0, 10.0]
    assert desc.tile_size == 32 and desc.pixel_size == 1.0
    assert desc.normalisation["window_m"] == 64.0
    assert desc.architecture["args"]["norm"] == "group"  # norm switch took effect
    for split in ("val", "test"):
        m = desc.metrics[split]
        assert {"iou", "f1", "iou_2m", "f1_10m", "nesting_violation_rate"} <= set(m)
    assert desc.training["dataset"]["tiles"] == {"train": 8, "val": 4, "test": 4}
    run_dir = out.with_name("gaps-run")
    assert result["run_dir"] == str(run_dir)
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["kind"] == "epoch"] == [1, 2]
    assert any(e["event"] == "progress" for e in events)
    reloaded = load_config(TrainConfig, run_dir / "config.yaml")
    assert reloaded.model.norm == "group"


def test_resume_auto_continues_a_finished_run(dataset, tmp_path):
    out = tmp_path / "m.safetensors"
    first = run_train(from_dict(TrainConfig, _params(dataset, out, tensorboard=False, test=False)))
    assert first["steps"] == 4
    logs = []
    second = run_train(
        from_dict(TrainConfig, _params(dataset, out, epochs=3, tensorboard=False, test=False)),
        CallbackReporter(logs.append),
    )
    assert second["steps"] == 6 and second["epochs"] == 3
    assert any("Resuming from" in e.get("message", "") for e in logs)
    with pytest.raises(ConfigError, match="'resume'"):
        run_train(from_dict(TrainConfig, _params(dataset, tmp_path / "n.safetensors", resume=True)))


def test_cancel_leaves_no_model_file(dataset, tmp_path):
    out = tmp_path / "c.safetensors"
    reporter = CallbackReporter(lambda e: None)
    calls = {"n": 0}

    def emit(event):
        if event["event"] == "progress":
            calls["n"] += 1
            if calls["n"] == 2:
                reporter.cancel()

    reporter._callback = emit
    with pytest.raises(Cancelled):
        run_train(from_dict(TrainConfig, _params(dataset, out, tensorboard=False)), reporter)
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not list(tmp_path.glob(".c.part*"))


@pytest.mark.parametrize("when", ["last_epoch", "final_evaluation"])
def test_late_cancel_leaves_no_model_file(dataset, tmp_path, when):
    """Cancel once checkpoints exist: during the last epoch, or after training (both epochs
    done, checkpoints written) while the best weights are evaluated, right before the model
    file would be written."""
    out = tmp_path / "models" / "late.safetensors"
    run_dir = out.with_name("late-run")
    best = run_dir / "checkpoints" / "best.safetensors"
    state = {"cancel": False, "complete": 0}

    def emit(event):
        if event["event"] != "progress":
            return
        state["complete"] += event["value"] >= 1.0  # last step, then end of the last epoch
        if when == "last_epoch":
            state["cancel"] = best.is_file()  # epoch 1 validated and checkpointed
        else:
            state["cancel"] = state["complete"] == 2  # fit ends right after this event

    reporter = CallbackReporter(emit, is_cancelled=lambda: state["cancel"])
    with pytest.raises(Cancelled):
        run_train(from_dict(TrainConfig, _params(dataset, out, tensorboard=False)), reporter)
    assert state["cancel"] and best.is_file() and (best.parent / "last.safetensors").is_file()
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
    assert epochs == ([1] if when == "last_epoch" else [1, 2])
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["late-run"]  # no partial files


def test_model_file_holds_the_best_checkpoint_not_the_last_epoch(dataset, tmp_path):
    """With a validation split the model file gets the best epoch's weights. The monitored
    metric ``lr`` falls every epoch under warmup_cosine, so epoch 1 is the best one."""
    import torch
    from safetensors.torch import load_file

    from engine.models.modelfile import read_description
    from engine.training.checkpoint import load_checkpoint

    out = tmp_path / "b.safetensors"
    params = _params(dataset, out, tensorboard=False, test=False, early_stopping={"metric": "lr"})
    result = run_train(from_dict(TrainConfig, params))
    assert result["weights"] == "best" and result["epochs"] == 2
    assert read_description(out).training["weights"] == "best"
    folder = out.with_name("b-run") / "checkpoints"
    best = load_checkpoint(folder / "best.safetensors")["model"]
    last = load_checkpoint(folder / "last.safetensors")["model"]
    written = load_file(str(out))
    assert set(written) == set(best)
    assert all(torch.equal(written[k], best[k]) for k in best)
    assert not all(torch.equal(best[k], last[k]) for k in best)  # epoch 2 changed the weights


def test_thresholds_subset_and_foreign_threshold(dataset, tmp_path):
    from engine.models.modelfile import read_description

    out = tmp_path / "s.safetensors"
    run_train(
        from_dict(
            TrainConfig,
            _params(dataset, out, thresholds=[5, 2], epochs=1, tensorboard=False, test=False),
        )
    )
    assert read_description(out).thresholds == [2.0, 5.0]
    with pytest.raises(ConfigError, match=r"'thresholds'.*film_unet"):
        run_train(
            from_dict(TrainConfig, _params(dataset, tmp_path / "t.safetensors", thresholds=[3.0]))
        )
