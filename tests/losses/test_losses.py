"""Focal, Dice, Focal+Dice, threshold weights, adaptive weighting and the loss factory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.config.base import from_dict
from engine.errors import ConfigError
from engine.losses import (
    AdaptiveLoss,
    DiceLoss,
    FocalDiceLoss,
    FocalLoss,
    LossConfig,
    available_losses,
    build_loss,
    inverse_frequency_weights,
)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    target = (torch.rand(2, 3, 8, 8, generator=g) > 0.7).float()
    valid = torch.rand(2, 3, 8, 8, generator=g) > 0.2
    return logits, target, valid


def test_focal_gamma0_equals_bce() -> None:
    logits, target, _ = _batch()
    assert torch.allclose(
        FocalLoss(gamma=0.0)(logits, target), F.binary_cross_entropy_with_logits(logits, target)
    )
    assert build_loss("bce")(logits, target) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, target))
    )


def test_focal_known_value_and_down_weights_easy_pixels() -> None:
    logits = torch.tensor([2.0, -1.0]).reshape(1, 1, 1, 2)
    target = torch.tensor([1.0, 1.0]).reshape(1, 1, 1, 2)
    p = torch.sigmoid(logits.flatten())
    expected = (-((1 - p) ** 2) * torch.log(p)).mean()
    assert FocalLoss(gamma=2.0)(logits, target) == pytest.approx(float(expected), rel=1e-5)
    assert FocalLoss(gamma=2.0)(logits, target) < FocalLoss(gamma=0.0)(logits, target)


def test_dice_perfect_and_worst() -> None:
    target = (torch.rand(2, 2, 8, 8) > 0.5).float()
    perfect = (target * 2 - 1) * 50
    assert DiceLoss()(perfect, target) == pytest.approx(0.0, abs=1e-4)
    assert DiceLoss()(-perfect, target) > 0.9
    empty = torch.zeros(1, 1, 4, 4)
    assert DiceLoss()(torch.full_like(empty, -50.0), empty) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("name", ["bce", "focal", "dice", "focal_dice"])
def test_invalid_pixels_are_ignored(name: str) -> None:
    logits, target, valid = _batch()
    loss = build_loss(name)
    ref = loss(logits, target, valid)
    logits2, target2 = logits.clone(), target.clone()
    logits2[~valid] = torch.randn(int((~valid).sum())) * 10
    target2[~valid] = 1 - target2[~valid]
    assert loss(logits2, target2, valid) == pytest.approx(float(ref), rel=1e-6)
    assert loss(logits, target, torch.ones_like(valid)) != pytest.approx(float(ref))


def test_components_per_threshold_and_weights() -> None:
    logits, target, valid = _batch()
    loss = FocalDiceLoss(threshold_weights=[3.0, 1.0, 1.0])
    value = loss(logits, target, valid)
    comps = loss.components
    assert set(comps) == {"focal", "dice", "total"} and comps["total"].shape == (3,)
    assert torch.allclose(comps["total"], comps["focal"] + comps["dice"])
    expected = (comps["total"] * torch.tensor([3.0, 1.0, 1.0])).sum() / 5
    assert value == pytest.approx(float(expected), rel=1e-5)
    flat = loss.component_values([2, 5, 10])
    assert "focal@2m" in flat and "dice@10m" in flat
    # a threshold with no valid pixel is left out, not counted as 0
    valid0 = valid.clone()
    valid0[:, 0] = False
    unweighted = FocalDiceLoss()
    v = unweighted(logits, target, valid0)
    assert v == pytest.approx(float(unweighted.components["total"][1:].mean()), rel=1e-5)


def test_inverse_frequency_weights_favour_rare_thresholds() -> None:
    w = inverse_frequency_weights([0.01, 0.05, 0.2, 0.4, 0.6])
    assert w == sorted(w, reverse=True) and sum(w) / len(w) == pytest.approx(1.0)
    assert w[0] / w[-1] <= 10.0 + 1e-9
    capped = inverse_frequency_weights([0.0, 0.9], power=1.0, max_ratio=4.0)
    assert capped[0] / capped[1] == pytest.approx(4.0)
    assert inverse_frequency_weights([0.1, 0.5], power=0.0) == [1.0, 1.0]


def test_adaptive_weights_are_learnable() -> None:
    logits, target, valid = _batch()
    loss = build_loss("adaptive", base="focal_dice", num_thresholds=3)
    assert isinstance(loss, AdaptiveLoss)
    params = list(loss.parameters())
    assert len(params) == 1 and params[0].shape == (3,)
    logits.requires_grad_(True)
    value = loss(logits, target, valid)
    # s = 0 at init: equals the plain mean of the base losses
    assert value.item() == pytest.approx(float(loss.components["total"].mean()), rel=1e-5)
    value.backward()
    assert loss.log_vars.grad is not None and torch.count_nonzero(loss.log_vars.grad) == 3
    assert logits.grad is not None
    opt = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        loss(logits.detach(), target, valid).backward()
        opt.step()
    # optimum s_k = log L_k
    assert torch.allclose(loss.log_vars.detach(), loss.components["total"].log(), atol=0.05)


def test_factory_and_config_errors() -> None:
    assert {"bce", "focal", "dice", "focal_dice", "adaptive"} <= set(available_losses())
    with pytest.raises(ConfigError, match="valid losses"):
        build_loss("lovasz")
    with pytest.raises(ConfigError, match=r"'gama'.*valid arguments"):
        build_loss("focal", gama=2)
    with pytest.raises(ConfigError, match="loss"):
        from_dict(LossConfig, {"name": "lovasz"})
    cfg = from_dict(LossConfig, {"adaptive": True})
    loss = cfg.build(3, positive_fraction=[0.02, 0.1, 0.3])
    assert isinstance(loss, AdaptiveLoss)
    w = loss.threshold_weights
    assert w is not None and w[0] > w[1] > w[2]
    plain = from_dict(LossConfig, {"name": "focal", "weighting": "none"}).build(3)
    assert isinstance(plain, FocalLoss) and plain.threshold_weights is None
    with pytest.raises(ConfigError, match="threshold_weights"):
        from_dict(LossConfig, {"threshold_weights": [1, 2]}).build(3)
