"""Scale-out with ``torch.distributed`` (``torchrun --nproc-per-node N -m engine infer ...``).

Each rank takes a contiguous share of the output row bands, computes it and writes a part
GeoTIFF; after a barrier, rank 0 assembles the parts into the final outputs (and runs
post-processing and polygons), then a last barrier releases every rank. Coordination uses the
gloo backend (CPU tensors), whatever device the model runs on. Outside torchrun (no
``WORLD_SIZE`` > 1 in the environment) everything is a single-process no-op.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass


@dataclass
class DistContext:
    """Rank, world size and a barrier; ``owned`` when this module created the process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False

    @property
    def active(self) -> bool:
        """True with more than one process."""
        return self.world > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (so all ranks make the same choice)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owned = False


def dist_context(timeout_s: float = 1800.0) -> DistContext:
    """Join the torchrun process group if there is one (gloo backend)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if world <= 1 and "torch" not in sys.modules:
        return DistContext()  # no process group can exist: do not import torch (about 2 s)
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return DistContext()
    if not dist.is_available():  # pragma: no cover
        return DistContext()
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)
    if world <= 1:
        return DistContext()
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owned=True)


def split_bands(n_bands: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous share ``[first, stop)`` of ``n_bands`` row bands for ``rank`` of ``world``."""
    base, extra = divmod(n_bands, world)
    first = rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)
