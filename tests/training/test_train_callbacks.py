"""Each callback does what it says: checkpoints, early stopping, TensorBoard, JSON log, progress."""

from __future__ import annotations

import io
import json

import pytest
import torch

from engine.errors import Cancelled
from engine.events import CallbackReporter
from engine.training.callbacks import (
    Checkpointer,
    ConsoleLogger,
    EarlyStopping,
    JsonLogger,
    ReporterProgress,
    TensorBoardLogger,
    TerminalProgress,
)
from engine.training.checkpoint import load_checkpoint
from engine.training.seed import seed_everything
from engine.training.trainer import Trainer

from .helpers import MemoryTiles, TinyNet, masked_bce


def _fit(callbacks, epochs=2, reporter=None, lr=0.02, n=8, **kw):
    seed_everything(0)
    model = TinyNet()
    trainer = Trainer(
        model,
        torch.optim.AdamW(model.parameters(), lr=lr),
        masked_bce,
        batch_size=4,
        epochs=epochs,
        callbacks=callbacks,
        reporter=reporter,
        **kw,
    )
    trainer.fit(MemoryTiles(n), MemoryTiles(4, seed=1))
    return trainer


def test_checkpointer_writes_last_and_best_that_load(tmp_path):
    ck = Checkpointer(tmp_path / "ck", every_steps=3, every_epochs=1, metric="val_loss")
    trainer = _fit([ck], epochs=3)
    assert ck.last_path.is_file() and ck.best_path.is_file()
    assert not list((tmp_path / "ck").glob(".*part*")), "no temporary files left"
    last = load_checkpoint(ck.last_path)
    assert last["trainer"]["step"] == trainer.state.step == 6
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(last["model"][k], v)
    best = load_checkpoint(ck.best_path)
    assert best["callbacks"]["Checkpointer"]["best"] == pytest.approx(
        min(h["val_loss"] for h in trainer.history)
    )
    # every epoch (3) + step 3; step 6 ends epoch 3 and the fit end changes nothing: no duplicates
    assert ck.saved.count("last.safetensors") == 4


def test_early_stopping_stops_after_patience():
    # lr = 0 -> the metric never improves -> stop after 1 (first) + patience epochs
    es = EarlyStopping("val_iou", patience=2)
    trainer = _fit([es], epochs=20, lr=1e-12)
    assert trainer.state.epoch == 3
    assert es.wait == 2 and es.stopped_epoch == 3


def test_early_stopping_unknown_metric_names_key():
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=r"early_stopping\.metric.*val_iou"):
        _fit([EarlyStopping("val_miou", patience=2)], epochs=1)


def test_json_logger_writes_step_and_epoch_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _fit([JsonLogger(path, every_steps=1)], epochs=2)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    steps = [r for r in recs if r["kind"] == "step"]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert {"loss", "lr", "grad_norm", "loss_bce_2m"} <= set(steps[0])
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"train_loss", "val_iou", "val_iou_5m", "val_f1_10m"} <= set(epochs[0])


def test_tensorboard_event_files_have_expected_tags(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = TensorBoardLogger(tmp_path / "tb", every_steps=1)
    _fit([tb], epochs=1)
    files = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert files
    acc = EventAccumulator(
        str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0}
    )
    acc.Reload()
    tags = acc.Tags()
    for tag in (
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "val/iou",
        "val/iou/2m",
        "val/f1/10m",
        "val/nesting_violation_rate",
        "epoch/lr",
    ):
        assert tag in tags["scalars"], tag
    assert "val/predictions" in tags["images"]
    assert "val/confusion/5m" in tags["images"]
    assert any("confusion" in t for t in tags["tensors"])  # text summaries


def test_reporter_progress_and_cancel():
    events = []
    reporter = CallbackReporter(events.append)

    class CancelAt(ReporterProgress):
        def on_batch_end(self, trainer, out):
            if trainer.state.step == 3:
                reporter.cancel()
            super().on_batch_end(trainer, out)

    with pytest.raises(Cancelled):
        _fit([CancelAt(reporter)], epochs=5, reporter=reporter)
    values = [e["value"] for e in events if e["event"] == "progress"]
    assert values == [0.1, 0.2, 0.2]  # steps 1, 2 and epoch 1 of 10 steps; cancelled at step 3


def test_console_logger_and_terminal_bar():
    logs = []
    stream = io.StringIO()
    _fit(
        [ConsoleLogger(), TerminalProgress(stream, force=True)],
        epochs=1,
        reporter=CallbackReporter(logs.append),
    )
    assert any(e["event"] == "log" and e["message"].startswith("epoch 1:") for e in logs)
    assert "epoch 1/1 [" in stream.getvalue() and "2/2" in stream.getvalue()
