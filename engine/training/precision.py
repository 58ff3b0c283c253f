"""Mixed precision: which autocast dtype a run uses and whether it needs a gradient scaler."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Precision:
    """Resolved mixed-precision settings."""

    name: str  # fp32 | bf16 | fp16
    dtype: torch.dtype | None
    use_scaler: bool

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        """'auto' = bf16 on CUDA with bf16 support, fp16 on older CUDA, fp32 on CPU.

        fp16 on a CPU falls back to bf16 (autocast on CPU supports bf16; GradScaler is CUDA's).
        """
        cuda = device.type == "cuda"
        if name == "auto":
            name = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
        if name == "fp16" and not cuda:
            name = "bf16"
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        return cls(name, dtype, use_scaler=name == "fp16")
