"""The CUDA path on a real GPU (``pytest -m cuda tests/cuda``; every test skips without CUDA).

CUDA inference against CPU inference with the shipped model, an AMP (bf16) training run of the
``train`` command, the pinned-memory runner's outputs, and the device report naming the GPU.
``bench/gpu_check.sh`` runs these on a lent GPU machine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.workloads import DEFAULT_MODEL, preprocess_params
from engine import api
from engine.events import CallbackReporter
from engine.inference.command import run_infer
from engine.inference.config import InferConfig
from engine.io.raster import read_array
from engine.models.modelfile import load_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
MASK_AGREEMENT_MIN = 0.999  # fp32 on the GPU (TF32 convolutions) vs fp32 on the CPU
BF16_AGREEMENT_MIN = 0.995
PROB_TOLERANCE = 0.05  # TF32 convolutions move probabilities near 0.5


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cuda") / "scene"
    api.run("synth", {"output": str(folder), "size": 384, "seed": 3})
    return {k: str(folder / f"{k}.tif") for k in ("dsm", "dtm", "chm")}


def _infer(scene: dict[str, str], out: Path, device: str, precision: str, logs: list[str]):
    params = {
        "dsm": scene["dsm"],
        "model": str(DEFAULT_MODEL),
        "output": str(out),
        "probabilities": str(out.with_name(out.stem + "_p.tif")),
        "device": device,
        "precision": precision,
        "runtime": "torch",
        "tile_size": 256,
    }
    reporter = CallbackReporter(lambda e: logs.append(e.get("message", "")))
    from engine.config.base import from_dict

    result = run_infer(from_dict(InferConfig, params), reporter)
    masks = np.stack([read_array(out, b)[0] for b in range(1, 6)])
    probs = np.stack([read_array(Path(params["probabilities"]), b)[0] for b in range(1, 6)])
    return result, masks, probs


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float((a[ok] == b[ok]).mean())


def test_cuda_inference_matches_cpu(scene: dict[str, str], tmp_path: Path) -> None:
    cpu_logs: list[str] = []
    gpu_logs: list[str] = []
    _, cpu_masks, cpu_p = _infer(scene, tmp_path / "cpu.tif", "cpu", "fp32", cpu_logs)
    result, gpu_masks, gpu_p = _infer(scene, tmp_path / "gpu.tif", "cuda", "fp32", gpu_logs)
    assert result["device"].startswith("cuda") and result["precision"] == "fp32"
    assert result["rasters"][0]["batch_size"] > 1  # auto batch on the GPU
    assert np.array_equal(np.isfinite(cpu_masks), np.isfinite(gpu_masks))  # same nodata
    assert _agreement(cpu_masks, gpu_masks) >= MASK_AGREEMENT_MIN
    ok = np.isfinite(cpu_p)
    assert float(np.abs(cpu_p[ok] - gpu_p[ok]).max()) <= PROB_TOLERANCE
    _, bf16_masks, _ = _infer(scene, tmp_path / "bf16.tif", "cuda", "bf16", gpu_logs)
    assert _agreement(cpu_masks, bf16_masks) >= BF16_AGREEMENT_MIN
    name = torch.cuda.get_device_name(0)
    assert any("infer: runtime=torch" in m and name in m for m in gpu_logs), gpu_logs


def test_pinned_runner_returns_fresh_arrays() -> None:
    from engine.inference.device import choose_device
    from engine.inference.predictor import Predictor

    model, desc = load_model(DEFAULT_MODEL)
    cpu = Predictor(model, desc.thresholds, choose_device("cpu", "fp32"))
    x = np.random.default_rng(0).normal(0, 1, (2, 1, 128, 128)).astype(np.float32)
    want = cpu(x)
    gpu = Predictor(load_model(DEFAULT_MODEL)[0], desc.thresholds, choose_device("cuda", "fp32"))
    first = gpu(x)
    kept = first.copy()
    second = gpu(-x)  # a second call must not write into the first call's array
    assert np.array_equal(first, kept)
    assert not np.allclose(first, second)
    scale = float(np.abs(want).max())
    assert float(np.abs(first - want).max()) <= 1e-2 * scale + 1e-3


def test_amp_training_on_cuda(scene: dict[str, str], tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    api.run("preprocess", preprocess_params(scene, dataset, 64))
    out = tmp_path / "model.safetensors"
    result = api.run(
        "train",
        {
            "dataset": str(dataset),
            "output": str(out),
            "device": "cuda",
            "precision": "bf16",
            "channels_last": True,
            "batch_size": 4,
            "epochs": 2,
            "max_steps": 6,
            "tensorboard": False,
            "progress_bar": False,
        },
    )
    assert out.is_file() and load_model(out)[1].training["steps"] == 6
    assert result["steps"] == 6
    lines = Path(result["metrics_log"]).read_text(encoding="utf-8").splitlines()
    losses = [v for r in map(json.loads, lines) for k, v in r.items() if k == "train_loss"]
    assert losses and all(math.isfinite(v) for v in losses), lines


def test_device_report_names_the_gpu() -> None:
    from engine.diagnostics import collect
    from engine.inference.device import choose_device

    name = torch.cuda.get_device_name(0)
    choice = choose_device("cuda", "auto")
    assert name in choice.describe()
    assert choice.precision in ("bf16", "fp16")
    info = collect()
    assert info["cuda_available"] and name in info["cuda_devices"]
