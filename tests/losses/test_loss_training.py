"""A tiny model learns a trivial gap task: the loss falls within 30 steps."""

from __future__ import annotations

import pytest
import torch

from engine.losses import LossConfig
from engine.models import build_model, nesting_violation_rate


@pytest.mark.parametrize(("name", "head"), [("unet", "cumulative"), ("film_unet", None)])
def test_loss_falls_on_synthetic_task(name: str, head: str | None) -> None:
    torch.manual_seed(0)
    thresholds = [0.5, 1.0, 1.5]
    args = {"base_channels": 4, "depth": 2, "thresholds": thresholds}
    if head:
        args["head"] = head
    model = build_model(name, **args)
    loss_fn = LossConfig().build(3, positive_fraction=[0.3, 0.5, 0.7])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x = torch.randn(4, 1, 16, 16) * 1.0 + 1.0  # "height" in units of the thresholds
    target = (x <= torch.tensor(thresholds).reshape(1, -1, 1, 1)).float()
    valid = torch.ones_like(target, dtype=torch.bool)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(x), target, valid)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    if head == "cumulative":
        model.eval()
        assert nesting_violation_rate(torch.sigmoid(model(x))) == 0.0
