"""Building blocks: DropPath, adaptive norms, attention gate, regularisation."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from engine.models import build_model
from engine.models.attention import AttentionGate
from engine.models.config import RegularisationConfig
from engine.models.droppath import DropPath
from engine.models.norm import choose_norm, convert_norms, group_count, make_norm
from engine.models.regularisation import apply_regularisation, param_groups

TINY = {"base_channels": 4, "depth": 2}


def test_drop_path_identity_in_eval_and_drops_in_train() -> None:
    layer = DropPath(0.5)
    x = torch.ones(64, 2, 3, 3)
    assert torch.equal(layer.eval()(x), x)
    torch.manual_seed(0)
    y = layer.train()(x)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 2.0).all(1)).all()  # whole samples dropped
    dropped = int((per_sample == 0).all(1).sum())
    assert 10 < dropped < 54
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_adaptive_norm_choice_and_conversion() -> None:
    assert (
        choose_norm(16) == "batch"
        and choose_norm(4) == "group"
        and choose_norm(8, threshold=8) == "batch"
    )
    assert isinstance(make_norm(16, batch_size=32), nn.BatchNorm2d)
    gn = make_norm(12, batch_size=2)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == group_count(12) == 6
    model = build_model("unet", **TINY)
    with torch.no_grad():
        model.encoder.stages[0][0][1].weight.fill_(0.7)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convert_norms(model, batch_size=2)
    assert model.args["norm"] == "group"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == n_bn
    assert torch.allclose(model.encoder.stages[0][0][1].weight, torch.tensor(0.7))
    model(torch.randn(1, 1, 16, 16))  # batch of 1 trains fine with GroupNorm
    convert_norms(model, batch_size=64)
    assert model.args["norm"] == "batch" and n_bn == sum(
        isinstance(m, nn.BatchNorm2d) for m in model.modules()
    )


def test_attention_gate_weights_in_unit_range() -> None:
    gate = AttentionGate(4, 8)
    gate.keep_attention = True
    skip, g = torch.randn(2, 4, 8, 8), torch.randn(2, 8, 8, 8)
    out = gate(skip, g)
    assert out.shape == skip.shape and gate.last_attention is not None
    assert gate.last_attention.min() >= 0 and gate.last_attention.max() <= 1


def test_regularisation_applies_everything() -> None:
    model = build_model("resunet_attention", **TINY)
    cfg = RegularisationConfig(dropout=0.2, drop_path=0.3, weight_decay=0.01, spectral_norm=True)
    summary = apply_regularisation(model, cfg)
    assert summary["dropout_layers"] > 0 and summary["drop_path_layers"] > 0
    assert all(m.p == 0.2 for m in model.modules() if isinstance(m, nn.Dropout2d))
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.3) < 1e-9 and rates == sorted(rates)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert summary["spectral_norm_layers"] == len(convs)
    assert all(parametrize.is_parametrized(c, "weight") for c in convs)
    assert model.args["dropout"] == 0.2 and model.args["drop_path"] == 0.3
    model(torch.randn(2, 1, 16, 16)).mean().backward()  # still trains


def test_param_groups_exclude_norms_and_biases() -> None:
    model = build_model("unet", **TINY)
    groups = param_groups(model, 0.05)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 4 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    n = sum(1 for _ in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n
    torch.optim.AdamW(groups, lr=1e-3)
