"""Device and precision choice: explicit settings, auto calibration by timing."""

from __future__ import annotations

import time

import pytest

from engine.errors import ConfigError
from engine.inference.device import DeviceChoice, calibrate, choose_device, needs_calibration


def test_explicit_cpu_choices() -> None:
    c = choose_device("cpu", "fp32", threads=1)
    assert (c.device, c.precision, c.threads, c.autocast_dtype) == ("cpu", "fp32", 1, None)
    assert choose_device("cpu", "bf16").autocast_dtype is not None
    assert choose_device("auto", "auto").precision in ("fp32", "bf16")
    with pytest.raises(ConfigError, match="quantum"):
        choose_device("quantum", "fp32")


@pytest.mark.parametrize(("bf16_seconds", "expected"), [(0.001, "bf16"), (0.02, "fp32")])
def test_calibrate_keeps_the_clearly_faster(bf16_seconds: float, expected: str) -> None:
    base = DeviceChoice("cpu", "bf16", 1)
    assert needs_calibration("auto", base) and not needs_calibration("bf16", base)
    cost = {"fp32": 0.01, "bf16": bf16_seconds}
    chosen, best = calibrate(base, lambda c: time.sleep(cost[c.precision]), repeats=1)
    assert chosen.precision == expected and set(best) == {"fp32", "bf16"}
