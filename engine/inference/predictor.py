"""Run a gap model on batches of normalised tiles: numpy in, float32 logits out.

Uses ``torch.inference_mode``, channels_last memory format and autocast (bf16/fp16) as chosen
by :mod:`engine.inference.device`. Non-conditioned models are always run at their own
thresholds and the requested ones are picked out of the output channels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.inference.device import DeviceChoice


def select_thresholds(
    requested: Sequence[float] | None, model_thresholds: Sequence[float], conditioned: bool
) -> tuple[list[float], list[float], list[int] | None]:
    """``(output thresholds, thresholds fed to the model, channel indices to keep or None)``."""
    model_t = [float(t) for t in model_thresholds]
    if not requested:
        return model_t, model_t, None
    req = [float(t) for t in requested]
    if len(set(req)) != len(req):
        raise ConfigError(f"Thresholds {req} contain duplicates.", "Give each threshold once.")
    if conditioned:
        return req, req, None
    index = []
    for t in req:
        hits = [i for i, m in enumerate(model_t) if abs(m - t) < 1e-6]
        if not hits:
            raise ConfigError(
                f"Threshold {t:g} m is not one of this model's thresholds "
                f"({', '.join(f'{m:g}' for m in model_t)} m) and the model is not conditioned.",
                "Pick thresholds from that list, or use a threshold-conditioned model.",
            )
        index.append(hits[0])
    return req, model_t, index


class TilePredictor:
    """Base of the model runners (torch :class:`Predictor`,
    :class:`~engine.inference.onnx_predictor.OnnxPredictor`, the benchmarks' rule): what the
    streaming code and ``engine infer`` use of them.

    ``__call__`` runs :meth:`run` with the run's device and precision (``choice``), adds up the
    forward time and counts the tiles; a subclass names its ``runtime`` and implements
    :meth:`run`. ``channels`` are the model's output channels kept (None = all), ``with_height``
    appends the height channel, ``info`` holds figures for the run's result.
    """

    runtime: str

    def __init__(
        self,
        choice: DeviceChoice,
        channels: list[int] | None = None,
        with_height: bool = False,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.choice = choice
        self.channels = channels
        self.with_height = with_height
        self.info = dict(info or {})
        self.forward_seconds = 0.0
        self.tiles = 0

    def __call__(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Outputs ``[B, T (+1), H, W]`` (float32, numpy) for inputs ``[B, C, H, W]``: logits,
        then the canopy height in metres when the predictor was made ``with_height``."""
        t0 = time.perf_counter()
        out = self.run(batch, self.choice)
        self.forward_seconds += time.perf_counter() - t0
        self.tiles += len(batch)
        return out

    def run(self, batch: NDArray[np.float32], choice: DeviceChoice) -> NDArray[np.float32]:
        """One forward pass of ``batch`` with the precision of ``choice``."""
        raise NotImplementedError


class Predictor(TilePredictor):
    """Wrap a model for batched inference (torch)."""

    runtime = "torch"

    def __init__(
        self,
        model: Any,
        thresholds: Sequence[float],
        choice: DeviceChoice,
        channels: list[int] | None = None,
        with_height: bool = False,
    ) -> None:
        import torch

        super().__init__(choice, channels, with_height)
        self.device = torch.device(choice.device)
        self.model = model.to(self.device).eval()
        self.channels_last = True
        try:
            self.model = self.model.to(memory_format=torch.channels_last)
        except Exception:  # pragma: no cover - models without 4-D weights
            self.channels_last = False
        self.thresholds = torch.tensor(list(thresholds), dtype=torch.float32, device=self.device)

    def run(self, batch: NDArray[np.float32], choice: DeviceChoice) -> NDArray[np.float32]:
        """One forward pass with the precision of ``choice``.

        On a GPU the tiles go up and the outputs come down through page-locked (pinned) host
        buffers with asynchronous copies: a copy from pageable memory is staged by the driver
        and runs at a fraction of the bus speed (the logits are 5x the input: one float per
        threshold). The buffers come from torch's caching host allocator, so they are reused.
        """
        import torch

        dtype = choice.autocast_dtype
        gpu = self.device.type == "cuda"
        with torch.inference_mode():
            host = torch.from_numpy(np.ascontiguousarray(batch))
            if gpu:
                host = torch.empty(host.shape, dtype=host.dtype, pin_memory=True).copy_(host)
            x = host.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                if self.with_height:
                    logits, height = self.model(x, self.thresholds, with_height=True)
                else:
                    logits, height = self.model(x, self.thresholds), None
            if self.channels is not None:
                logits = logits[:, self.channels]
            if height is not None:
                logits = torch.cat([logits.float(), height.float()], dim=1)
            y = logits.float().contiguous()
            if not gpu:
                cpu_out: NDArray[np.float32] = y.cpu().numpy()
                return cpu_out
            pinned = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
            pinned.copy_(y, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            out: NDArray[np.float32] = pinned.numpy()
        return out
