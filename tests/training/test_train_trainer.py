"""Trainer: loss falls, clipping caps and logs the norm, bf16 autocast, norms, channels-last."""

from __future__ import annotations

import pytest
import torch

from engine.training.callbacks import Callback
from engine.training.precision import Precision
from engine.training.seed import seed_everything
from engine.training.trainer import Trainer

from .helpers import MemoryTiles, TinyNet, masked_bce


class Record(Callback):
    def __init__(self):
        self.steps = []

    def on_batch_end(self, trainer, out):
        self.steps.append(out)


def _trainer(model=None, lr=0.02, **kw):
    seed_everything(0)
    model = model or TinyNet()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rec = Record()
    kw.setdefault("batch_size", 4)
    return Trainer(model, opt, masked_bce, callbacks=[rec, *kw.pop("callbacks", [])], **kw), rec


def test_loss_falls_and_metrics_are_per_threshold():
    trainer, rec = _trainer(epochs=4)
    history = trainer.fit(MemoryTiles(16), MemoryTiles(4, seed=1))
    losses = [float(s.loss) for s in rec.steps]
    assert sum(losses[-4:]) < 0.6 * sum(losses[:4])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    last = history[-1]
    for t in ("2m", "5m", "10m"):
        assert 0 <= last[f"val_iou_{t}"] <= 1 and 0 <= last[f"val_f1_{t}"] <= 1
    assert "val_nesting_violation_rate" in last
    assert trainer.state.step == 16 and trainer.state.epoch == 4


def test_validation_counts_sum_over_pixels():
    trainer, _ = _trainer()
    ds = MemoryTiles(4, seed=3)
    trainer.thresholds = ds.thresholds
    trainer.validate(ds)
    valid_pixels = sum(int(ds[i]["valid"][0].sum()) for i in range(len(ds)))
    assert int(trainer.val_counts[0].sum()) == valid_pixels


def test_grad_clipping_caps_norm_and_logs_it():
    trainer, rec = _trainer(lr=1e-9, grad_clip_norm=1e-3, max_steps=3)
    trainer.fit(MemoryTiles(12))
    for out in rec.steps:
        assert out.grad_norm is not None and float(out.grad_norm) > 1e-3  # norm before clipping
    # after clipping, the gradient that reached the optimizer has norm <= max_norm
    model = trainer.model
    batch = next(iter(torch.utils.data.DataLoader(MemoryTiles(4), batch_size=4)))
    logits = model(batch["image"])
    masked_bce(logits, batch["target"], batch["valid"])[0].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
    total = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert float(total) <= 1e-3 * 1.0001


def test_grad_norm_logged_without_clipping():
    trainer, rec = _trainer(grad_clip_norm=None, max_steps=2)
    trainer.fit(MemoryTiles(8))
    assert all(float(s.grad_norm) > 0 for s in rec.steps)


def test_bf16_autocast_runs_on_cpu():
    seen = {}

    class Probe(TinyNet):
        def forward(self, x, thresholds=None):
            out = super().forward(x, thresholds)
            seen["dtype"] = out.dtype
            return out

    trainer, rec = _trainer(model=Probe(), precision="bf16", max_steps=3)
    trainer.fit(MemoryTiles(12))
    assert trainer.precision.name == "bf16"
    assert seen["dtype"] == torch.bfloat16
    assert all(torch.isfinite(s.loss) for s in rec.steps)


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert Precision.resolve("auto", cpu).name == "fp32"
    assert Precision.resolve("fp16", cpu).name == "bf16"  # no GradScaler on CPU
    assert not Precision.resolve("bf16", cpu).use_scaler


def test_channels_last_option():
    trainer, rec = _trainer(channels_last=True, max_steps=2)
    trainer.fit(MemoryTiles(8))
    w = trainer.model.body[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    assert len(rec.steps) == 2


def test_norm_switch_from_model_config():
    from engine.models.config import ModelConfig

    small = ModelConfig(
        name="unet", args={"base_channels": 4, "depth": 2}, norm="auto", norm_threshold=8
    )
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm)
    kinds = lambda m: {type(x).__name__ for x in m.modules() if isinstance(x, norms)}  # noqa: E731
    assert kinds(small.build([2.0, 5.0], 1, batch_size=2)) == {"GroupNorm"}
    assert kinds(small.build([2.0, 5.0], 1, batch_size=16)) == {"BatchNorm2d"}
    forced = ModelConfig(name="unet", args={"base_channels": 4, "depth": 2}, norm="group")
    assert kinds(forced.build([2.0, 5.0], 1, batch_size=16)) == {"GroupNorm"}


def test_real_unet_trains_a_few_steps():
    from engine.models.config import ModelConfig

    seed_everything(0)
    model = ModelConfig(args={"base_channels": 4, "depth": 2}).build(
        [2.0, 5.0, 10.0], 1, batch_size=4
    )
    trainer, rec = _trainer(model=model, lr=0.01, max_steps=4)
    trainer.fit(MemoryTiles(16), MemoryTiles(4, seed=1))
    assert len(rec.steps) == 4
    assert trainer.history[-1]["val_nesting_violation_rate"] == 0.0  # cumulative head nests


@pytest.mark.parametrize("workers", [0])
def test_same_seed_same_weights(workers):
    a, _ = _trainer(max_steps=3, num_workers=workers)
    a.fit(MemoryTiles(12, augment=True))
    b, _ = _trainer(max_steps=3, num_workers=workers)
    b.fit(MemoryTiles(12, augment=True))
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
