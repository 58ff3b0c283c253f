"""The I/O-only pass of ``engine infer``: the whole pipeline with the model replaced by a rule.

:class:`RulePredictor` stands in for the model runner (``engine.inference.command.run_infer``'s
``make_predictor``): it turns each batch of normalised tiles into logits of the same shape,
dtype and size as the model's, ``threshold / scale - x`` per threshold (the classical
"height above the local low surface <= threshold" rule), so the masks written have a gap
structure like real ones and compress alike. Everything else is the engine's own run: the
low-surface pass, the reader thread(s) (read, normalise, cut), stitching, masks, writing.
``end-to-end seconds / I/O-only seconds`` on the same raster is then the price of the model
(forward pass and host<->device copies) that the pipeline does not hide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.inference.device import DeviceChoice
from engine.inference.predictor import TilePredictor

RUNTIME = "none (I/O only)"


class RulePredictor(TilePredictor):
    """A model runner without a model: logits ``t / scale - x`` for each threshold ``t``."""

    runtime = RUNTIME

    def __init__(self, thresholds: list[float], scale: float, choice: DeviceChoice) -> None:
        self.offsets = (np.asarray(thresholds, dtype=np.float32) / np.float32(scale))[
            None, :, None, None
        ]
        super().__init__(choice, info={"io_only": True})

    def run(self, batch: NDArray[np.float32], choice: DeviceChoice) -> NDArray[np.float32]:
        """The rule on one batch (``choice`` is ignored: it runs on the CPU)."""
        out: NDArray[np.float32] = np.subtract(self.offsets, batch[:, :1], dtype=np.float32)
        return out


def make_rule_predictor(
    config: Any, loaded: Any, choice: DeviceChoice, runtime: str, reporter: Any
) -> RulePredictor:
    """``make_predictor`` for :func:`engine.inference.command.run_infer`: the output thresholds
    and normalisation scale of the model, no forward pass. It computes on the CPU but keeps the
    run's ``choice``, so the pipeline's settings that follow the device (batch size, reader
    threads) are those of the model run it is compared with."""
    _, desc, fed, channels = loaded
    thresholds = [float(fed[c]) for c in channels] if channels is not None else list(fed)
    scale = float(dict(desc.normalisation or {}).get("scale", 10.0))
    return RulePredictor(thresholds, scale, choice)
