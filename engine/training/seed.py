"""Deterministic seeding and RNG state capture.

Every random stream of a run is derived from the run's ``seed``:

- model initialisation and dropout: the global torch RNG, seeded once by :func:`seed_everything`
  and saved/restored with every checkpoint (:func:`rng_state` / :func:`set_rng_state`);
- data order: one permutation per epoch from a generator seeded with ``derive_seed(seed, epoch)``
  (so a resumed run rebuilds the same order without saving sampler state);
- augmentation: one seed per sample position, ``derive_seed(seed, epoch, position)``, applied
  around each ``dataset[i]`` call (:class:`SeededItems`), identical with 0 or N workers.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import numpy as np
import torch

_MASK63 = (1 << 63) - 1


def derive_seed(*parts: int) -> int:
    """A well-mixed non-negative 63-bit seed from integers (stable across Python runs)."""
    digest = hashlib.blake2b(",".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this for deterministic matmuls; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def epoch_generator(seed: int, epoch: int, tag: int = 0) -> torch.Generator:
    """A CPU generator for epoch ``epoch`` (``tag`` separates streams, e.g. train/val)."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, epoch, tag))
    return g


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker init: seed python/numpy from torch's per-worker seed.

    Item-level randomness is re-seeded per sample by :class:`SeededItems`; this only makes any
    remaining global randomness in workers reproducible too.
    """
    seed = torch.initial_seed() & 0xFFFFFFFF
    random.seed(seed)
    np.random.seed(seed)


def _set_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


class SeededItems(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Wraps a dataset; ``self[(index, seed)]`` returns ``dataset[index]`` under that seed.

    Global RNG states are saved and restored around the call, so loading data in the main
    process (``num_workers=0``) never perturbs the training RNG (dropout).
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        py, npy, tch = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            _set_all(seed)
            return self.dataset[index]
        finally:
            random.setstate(py)
            np.random.set_state(npy)
            torch.set_rng_state(tch)


# -- RNG state as tensors + JSON (for pickle-free checkpoints) --------------------------------


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Current python/numpy/torch(/cuda) RNG states as (tensors, JSON-able data)."""
    tensors = {"torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s.clone()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    tensors["python"] = torch.tensor(py_state, dtype=torch.int64)
    meta = {
        "numpy": {
            "kind": kind,
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": py_version, "gauss": py_gauss},
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    torch.set_rng_state(tensors["torch"].to(torch.uint8))
    cuda = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8) for k in cuda])
    n = meta["numpy"]
    keys = tensors["numpy"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(int(v) for v in tensors["python"].tolist()), p["gauss"]))
