"""Device and precision choice."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.inference.device import choose_device


def test_explicit_cpu_choices() -> None:
    c = choose_device("cpu", "fp32", threads=1)
    assert (c.device, c.precision, c.threads, c.autocast_dtype) == ("cpu", "fp32", 1, None)
    assert choose_device("cpu", "bf16").autocast_dtype is not None
    assert choose_device("auto", "auto").precision in ("fp32", "bf16")
    assert choose_device("cpu", "auto").precision == "fp32"  # exact by default on CPUs
    with pytest.raises(ConfigError, match="quantum"):
        choose_device("quantum", "fp32")
