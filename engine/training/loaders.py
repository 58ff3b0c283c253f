"""DataLoaders whose order and augmentation follow from ``(seed, epoch)`` only.

The training sampler wraps :class:`torch.utils.data.DistributedSampler` (one shard per rank,
permutation seeded by ``seed + epoch``), hands each position its own augmentation seed and can
skip the batches a resumed run already did. No sampler state needs saving: the epoch number and
the batch index inside it rebuild the exact stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from engine.training.seed import SeededItems, derive_seed, epoch_generator, worker_init_fn


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, item_seed)`` for one epoch on one rank, from position ``start`` on."""

    def __init__(
        self,
        dataset: Sized,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        self.inner: DistributedSampler[int] = DistributedSampler(
            dataset,  # type: ignore[arg-type]
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.inner.set_epoch(epoch)
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.start = start

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for pos, index in enumerate(self.inner):
            if pos >= self.start:
                yield (
                    int(index),
                    derive_seed(self.seed, self.epoch, pos * self.world_size + self.rank),
                )


class ShardSampler(Sampler[tuple[int, int]]):
    """Evaluation order: every ``world_size``-th sample from ``rank``, no padding, fixed seeds."""

    def __init__(self, n: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, n, world_size))
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices:
            yield i, derive_seed(self.seed, -1, i)


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Training batches per epoch and rank (last incomplete batch dropped when n >= batch)."""
    per_rank = -(-n // world_size)
    return max(1, per_rank // batch_size) if per_rank >= batch_size else 1


def train_loader(
    dataset: Any,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    skip_batches: int = 0,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """The training loader of ``epoch``, starting after ``skip_batches`` batches."""
    sampler = EpochSampler(
        dataset,
        seed=seed,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        start=skip_batches * batch_size,
    )
    drop_last = len(sampler.inner) >= batch_size
    return DataLoader(
        SeededItems(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=worker_init_fn,
        # The loader draws its workers' base seed from this generator, never from the global RNG.
        generator=epoch_generator(seed, epoch, tag=1),
        persistent_workers=False,
    )


def eval_loader(
    dataset: Any,
    *,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """Deterministic loader for validation/test (this rank's shard, in order)."""
    return DataLoader(
        SeededItems(dataset),
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), seed=seed, rank=rank, world_size=world_size),
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=worker_init_fn,
        generator=epoch_generator(seed, -1, tag=2),
    )


def to_device(
    batch: dict[str, Any], device: torch.device, channels_last: bool = False
) -> dict[str, Any]:
    """Move tensors of a batch to ``device`` (image in channels-last layout if asked)."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "image" and channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out
