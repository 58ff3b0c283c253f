"""Learning-rate schedules: thin factory over :mod:`torch.optim.lr_scheduler`.

=============== ============================================ ========= ==========================
name            torch object                                 stepped   params (defaults)
=============== ============================================ ========= ==========================
warmup_cosine   LambdaLR(WarmupCosine)                       per batch warmup_steps (5% of steps)
                                                                       or warmup_epochs,
                                                                       min_lr_ratio (0.01)
cyclic          CyclicLR                                     per batch base_lr (lr/10), max_lr (lr),
                                                                       step_size_up (half an
                                                                       epoch), mode (triangular)
onecycle        OneCycleLR                                   per batch max_lr (lr), pct_start (0.3),
                                                                       div_factor (25),
                                                                       final_div_factor (1e4)
plateau         ReduceLROnPlateau                            per epoch factor (0.5), patience (3),
                                                                       threshold (1e-4),
                                                                       min_lr (0)
constant        none                                                   -
=============== ============================================ ========= ==========================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from engine.errors import ConfigError

PARAMS: dict[str, dict[str, Any]] = {
    "warmup_cosine": {"warmup_steps": None, "warmup_epochs": None, "min_lr_ratio": 0.01},
    "cyclic": {
        "base_lr": None,
        "max_lr": None,
        "step_size_up": None,
        "mode": "triangular",
        "gamma": 1.0,
    },
    "onecycle": {"max_lr": None, "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
    "plateau": {"factor": 0.5, "patience": 3, "threshold": 1e-4, "min_lr": 0.0, "cooldown": 0},
    "constant": {},
}
SCHEDULERS = tuple(PARAMS)


def check_scheduler(name: str, params: dict[str, Any], key: str = "scheduler") -> None:
    """Raise :class:`ConfigError` for an unknown schedule name or parameter."""
    if name not in PARAMS:
        raise ConfigError(
            f"Config key '{key}.name' = {name!r} is not a known schedule; "
            f"valid names: {', '.join(SCHEDULERS)}."
        )
    unknown = sorted(set(params) - set(PARAMS[name]))
    if unknown:
        valid = ", ".join(PARAMS[name]) or "none"
        raise ConfigError(
            f"Unknown config key(s) {', '.join(repr(f'{key}.params.{k}') for k in unknown)} for "
            f"schedule {name!r}; valid keys: {valid}."
        )
    modes = ("triangular", "triangular2", "exp_range")
    if name == "cyclic" and params.get("mode", "triangular") not in modes:
        raise ConfigError(
            f"Config key '{key}.params.mode' = {params['mode']!r}; "
            f"valid values: {', '.join(modes)}."
        )


@dataclass
class WarmupCosine:
    """LR factor: linear rise over ``warmup`` steps, then cosine decay to ``min_ratio``.

    A plain object (not a closure) so ``LambdaLR.state_dict`` stores its fields.
    """

    warmup: int
    total: int
    min_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def interval(name: str) -> str:
    """'step' when the schedule advances every batch, 'epoch' when after each validation."""
    return "epoch" if name == "plateau" else "step"


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    params: dict[str, Any] | None = None,
    steps_per_epoch: int,
    epochs: int,
    mode: str = "max",
) -> Any:
    """The torch scheduler ``name`` for ``epochs`` x ``steps_per_epoch`` optimizer steps.

    ``mode`` ('max' or 'min') is the direction of the monitored metric (plateau only).
    Returns None for 'constant'.
    """
    params = dict(params or {})
    check_scheduler(name, params)
    p = {**PARAMS[name], **params}
    lr = float(optimizer.param_groups[0]["lr"])
    total = max(1, steps_per_epoch * epochs)
    if name == "constant":
        return None
    if name == "warmup_cosine":
        if p["warmup_steps"] is not None:
            warmup = int(p["warmup_steps"])
        elif p["warmup_epochs"] is not None:
            warmup = round(float(p["warmup_epochs"]) * steps_per_epoch)
        else:
            warmup = round(0.05 * total)
        fn = WarmupCosine(min(warmup, total - 1), total, float(p["min_lr_ratio"]))
        return lr_scheduler.LambdaLR(optimizer, fn)
    if name == "cyclic":
        momentum = "momentum" in optimizer.defaults
        return lr_scheduler.CyclicLR(
            optimizer,
            base_lr=float(p["base_lr"] if p["base_lr"] is not None else lr / 10),
            max_lr=float(p["max_lr"] if p["max_lr"] is not None else lr),
            step_size_up=int(p["step_size_up"] or max(1, steps_per_epoch // 2)),
            mode=p["mode"],
            gamma=float(p["gamma"]),
            cycle_momentum=momentum and bool(optimizer.defaults.get("momentum")),
        )
    if name == "onecycle":
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=float(p["max_lr"] if p["max_lr"] is not None else lr),
            total_steps=total,
            pct_start=float(p["pct_start"]),
            div_factor=float(p["div_factor"]),
            final_div_factor=float(p["final_div_factor"]),
            cycle_momentum=False,
        )
    return lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=mode,  # type: ignore[arg-type]
        factor=float(p["factor"]),
        patience=int(p["patience"]),
        threshold=float(p["threshold"]),
        min_lr=float(p["min_lr"]),
        cooldown=int(p["cooldown"]),
    )
