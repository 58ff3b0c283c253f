"""Launched by ``torch.distributed.run --nproc_per_node 2``: a few DDP steps, weights per rank.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT_DIR
Writes OUT_DIR/rank<r>.safetensors (final weights) and OUT_DIR/history<r>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
torch.set_num_threads(1)

from safetensors.torch import save_file  # noqa: E402

from engine.training import distributed as dist  # noqa: E402
from engine.training.callbacks import Checkpointer  # noqa: E402
from engine.training.seed import seed_everything  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402
from tests.training.helpers import MemoryTiles, TinyNet, masked_bce  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    world = dist.init("cpu")
    assert world.size == 2, world
    seed_everything(0)
    model = TinyNet(dropout=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.02)
    trainer = Trainer(
        model,
        opt,
        masked_bce,
        batch_size=2,
        epochs=2,
        seed=0,
        world=world,
        callbacks=[Checkpointer(out / "ck", every_steps=1)],
    )
    history = trainer.fit(MemoryTiles(8, augment=True), MemoryTiles(3, seed=1))
    state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(out / f"rank{world.rank}.safetensors"))
    (out / f"history{world.rank}.json").write_text(
        json.dumps({"steps": trainer.state.step, "history": history})
    )
    dist.shutdown(world)


if __name__ == "__main__":
    main()
