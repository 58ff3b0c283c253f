"""The loss as the training loop sees it: total and components, and the canopy height term."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def loss_parts(out: Any, loss_fn: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total, components) from a loss returning a tensor (components then come from
    ``loss_fn.components``, the engine.losses convention), ``(tensor, dict)`` or a mapping."""
    if isinstance(out, torch.Tensor):
        comps = getattr(loss_fn, "components", None)
        return out, dict(comps) if isinstance(comps, dict) else {}
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor):
        return out[0], dict(out[1] or {})
    if isinstance(out, dict) and isinstance(out.get("loss"), torch.Tensor):
        return out["loss"], {
            k: v for k, v in out.items() if k != "loss" and isinstance(v, torch.Tensor)
        }
    raise TypeError(
        f"The loss returned {type(out).__name__}; expected a tensor, (tensor, dict) or a mapping."
    )


def height_l1(height: torch.Tensor, chm: torch.Tensor, cap_m: float) -> torch.Tensor:
    """Mean |min(h, cap) - min(CHM, cap)| (metres) over pixels with a reference height: above
    ``cap_m`` (taller than any gap threshold) the exact height does not matter."""
    ok = torch.isfinite(chm)
    target = torch.where(ok, chm, torch.zeros_like(chm)).clamp(max=cap_m)
    err = (height.clamp(max=cap_m) - target).abs()
    return (err * ok).sum() / ok.sum().clamp(min=1)


def flat_components(
    components: dict[str, Any], thresholds: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Scalar components: per-threshold vectors become ``name_5m`` entries."""
    out: dict[str, torch.Tensor] = {}
    for k, v in components.items():
        if not isinstance(v, torch.Tensor):
            continue
        v = v.detach()
        if v.numel() == 1:
            out[k] = v.reshape(())
        else:
            labels = [f"{t:g}m" for t in thresholds] if v.numel() == len(thresholds) else None
            for i, x in enumerate(v.flatten()):
                out[f"{k}_{labels[i] if labels else i}"] = x
    return out
