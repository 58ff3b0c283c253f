"""Model registry, shapes, threshold handling and nesting by construction."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ConfigError, InputError
from engine.models import ModelConfig, available_models, build_model, nesting_violation_rate
from engine.models.film import FiLM, ThresholdEmbedding
from engine.models.nesting import enforce_nesting

TINY = {"base_channels": 4, "depth": 2}
THRESHOLDS = [2.0, 5.0, 10.0, 15.0, 20.0]


def test_registry_lists_and_rejects() -> None:
    assert {"unet", "resunet_attention", "film_unet", "deeplab_lite"} <= set(available_models())
    with pytest.raises(ConfigError, match=r"valid models: .*unet"):
        build_model("segformer")
    with pytest.raises(ConfigError, match=r"'bogus'.*valid arguments: .*base_channels"):
        build_model("unet", bogus=1)
    with pytest.raises(ConfigError, match="valid heads"):
        build_model("unet", head="softmax", **TINY)
    with pytest.raises(ConfigError, match="distinct"):
        build_model("unet", thresholds=[2, 2], **TINY)


@pytest.mark.parametrize("name", ["unet", "resunet_attention", "film_unet", "deeplab_lite"])
@pytest.mark.parametrize(("batch", "h", "w"), [(1, 32, 32), (2, 16, 48)])
def test_shapes_and_attributes(name: str, batch: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_channels=2, thresholds=[10, 2, 5], **TINY).eval()
    y = model(torch.randn(batch, 2, h, w))
    assert y.shape == (batch, 3, h, w) and torch.isfinite(y).all()
    assert model.in_channels == 2 and model.depth == 2 and model.thresholds == [2.0, 5.0, 10.0]
    assert model.args["thresholds"] == [2.0, 5.0, 10.0] and model.name == name
    assert model.output_kind in ("cumulative", "independent", "height")
    assert model.conditioned is (name == "film_unet")
    with pytest.raises(InputError, match="multiples of 4"):
        model(torch.randn(1, 2, 30, 32))
    with pytest.raises(InputError, match="2 input channel"):
        model(torch.randn(1, 1, 32, 32))


def test_default_unet_backprop() -> None:
    model = build_model("unet", base_channels=4)
    assert model.depth == 4 and model.output_kind == "cumulative" and model.thresholds == THRESHOLDS
    y = model(torch.randn(2, 1, 32, 32))
    y.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_fixed_model_threshold_selection() -> None:
    model = build_model("unet", **TINY).eval()
    x = torch.randn(1, 1, 16, 16)
    full = model(x)
    sub = model(x, torch.tensor([15.0, 5.0]))
    assert torch.allclose(sub, full[:, [3, 1]])
    with pytest.raises(InputError, match="not at 7 m"):
        model(x, [7.0])


@pytest.mark.parametrize("head", ["cumulative", "height", "residual_height"])
def test_nested_by_construction(head: str) -> None:
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model("unet", head=head, **TINY).eval()
        if seed:  # random (not just initial) weights
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0, 1.0)
        probs = torch.sigmoid(model(torch.randn(2, 1, 32, 32) * 3))
        assert (probs[:, 1:] >= probs[:, :-1] - 1e-6).all()
        assert nesting_violation_rate(probs) == 0.0
        for cut in (0.1, 0.5, 0.9):
            assert nesting_violation_rate(probs, threshold=cut) == 0.0


def test_independent_head_can_violate_nesting() -> None:
    torch.manual_seed(0)
    model = build_model("unet", head="independent", **TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.0)
    probs = torch.sigmoid(model(torch.randn(2, 1, 32, 32) * 3))
    assert nesting_violation_rate(probs) > 0.0
    assert nesting_violation_rate(enforce_nesting(probs)) == 0.0


def test_nesting_violation_rate_hand_made() -> None:
    masks = torch.zeros(1, 3, 2, 2, dtype=torch.bool)
    masks[0, :, 0, 0] = torch.tensor([True, True, True])  # nested
    masks[0, :, 0, 1] = torch.tensor([True, False, True])  # violation
    masks[0, :, 1, 0] = torch.tensor([False, False, True])  # nested
    assert nesting_violation_rate(masks) == pytest.approx(0.25)
    valid = torch.tensor([[[True, False], [True, True]]])
    assert nesting_violation_rate(masks, valid=valid) == 0.0


def test_height_head_accepts_any_threshold() -> None:
    model = build_model("unet", head="height", **TINY).eval()
    assert model.conditioned and model.output_kind == "height"
    y = model(torch.randn(1, 1, 16, 16), [3.0, 7.5, 12.0])
    assert y.shape == (1, 3, 16, 16) and (y[:, 1:] > y[:, :-1]).all()


def test_residual_height_head_starts_as_the_threshold_rule() -> None:
    """At init, logit(t) = t - 10 * x: gap exactly where DSM - low surface <= t."""
    for name in ("unet", "resunet_attention", "deeplab_lite"):
        model = build_model(name, head="residual_height", **TINY).eval()
        assert model.conditioned and model.output_kind == "height"
        x = torch.randn(1, 1, 32, 32)
        with torch.no_grad():
            logits = model(x, [2.0, 5.0, 13.0])
        expected = torch.tensor([2.0, 5.0, 13.0]).reshape(1, 3, 1, 1) - 10 * x
        torch.testing.assert_close(logits * model.head.temperature(), expected)
        assert model.head.temperature().item() == pytest.approx(1.0, abs=2e-3)
    model.train()
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    assert model.head.conv.weight.grad is not None and model.head.conv.weight.grad.abs().sum() > 0


def test_film_layer_is_identity_at_init() -> None:
    emb = ThresholdEmbedding(8)(torch.tensor([2.0, 20.0]))
    film = FiLM(8, 3)
    gamma, beta = film.params(emb)
    assert torch.count_nonzero(gamma) == 0 and torch.count_nonzero(beta) == 0
    x = torch.randn(4, 3, 5, 5)  # B=2 x T=2
    assert torch.equal(film(x, emb), x)


def test_film_unet_identity_init_and_unseen_thresholds() -> None:
    torch.manual_seed(0)
    model = build_model("film_unet", **TINY).eval()
    x = torch.randn(2, 1, 16, 16)
    y = model(x, [2.0, 7.3, 33.0])  # 7.3 and 33 were never seen
    assert y.shape == (2, 3, 16, 16)
    # identity FiLM at init: every threshold gives the same logits
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
    # and after training-like perturbation the threshold matters
    with torch.no_grad():
        for film in model.films:
            film.to_params.weight.normal_(0, 0.5)
    y = model(x, [2.0, 7.3])
    assert not torch.allclose(y[:, 0], y[:, 1])
    # one threshold per sample batch matches a batch of several
    assert torch.allclose(model(x, [7.3])[:, 0], y[:, 1], atol=1e-5)


def test_model_config_builds_with_auto_norm_and_regularisation() -> None:
    from engine.config.base import from_dict

    cfg = from_dict(
        ModelConfig,
        {
            "name": "resunet_attention",
            "args": TINY,
            "regularisation": {"drop_path": 0.2, "dropout": 0.1},
        },
    )
    small = cfg.build(THRESHOLDS, in_channels=1, batch_size=2)
    assert small.args["norm"] == "group" and small.args["drop_path"] == 0.2
    assert any(isinstance(m, torch.nn.GroupNorm) for m in small.modules())
    big = cfg.build(THRESHOLDS, batch_size=16)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in big.modules())
    with pytest.raises(ConfigError, match="valid models"):
        from_dict(ModelConfig, {"name": "nope"})
    with pytest.raises(ConfigError, match=r"model.args.thresholds"):
        from_dict(ModelConfig, {"args": {"thresholds": [1]}})
