"""Fixtures for inference tests: tiny models, model files and small DSMs (helpers in
``helpers.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from .helpers import oracle, save, tiny_unet, write_dsm


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the ONNX export cache of ``runtime=onnxruntime`` runs out of ~/.cache."""
    folder = tmp_path_factory.mktemp("canopygaps-cache")
    old = os.environ.get("CANOPYGAPS_CACHE")
    os.environ["CANOPYGAPS_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("CANOPYGAPS_CACHE", None)
    else:
        os.environ["CANOPYGAPS_CACHE"] = old


@pytest.fixture(scope="session")
def unet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model file of :func:`tiny_unet` (1 m pixels)."""
    return save(tiny_unet(), tmp_path_factory.mktemp("models") / "unet.safetensors")


@pytest.fixture(scope="session")
def oracle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model file of :class:`OracleModel` (1 m pixels)."""
    return save(oracle(), tmp_path_factory.mktemp("models") / "oracle.safetensors")


@pytest.fixture
def dsm_file(tmp_path: Path) -> Callable[..., Path]:
    """``dsm_file(name, data, **kw)`` writes a DSM under the test's tmp folder."""

    def make(name: str, data: np.ndarray, **kw: object) -> Path:
        return write_dsm(tmp_path / name, data, **kw)  # type: ignore[arg-type]

    return make
