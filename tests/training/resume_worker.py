"""Subprocess for the resume test: train TinyNet with checkpoints every few steps.

Usage: python resume_worker.py RUN_DIR [--slow-after STEP]. Prints ``CKPT <step>`` after each
checkpoint; ``--slow-after`` sleeps after later steps so the parent can SIGKILL mid-epoch.
Resumes automatically from RUN_DIR/checkpoints/last.safetensors when present.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
torch.set_num_threads(1)

from engine.events import CallbackReporter  # noqa: E402
from engine.training.callbacks import Callback, Checkpointer, EarlyStopping, JsonLogger  # noqa: E402
from engine.training.checkpoint import load_checkpoint  # noqa: E402
from engine.training.schedulers import build_scheduler  # noqa: E402
from engine.training.seed import seed_everything  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402
from tests.training.helpers import MemoryTiles, TinyNet, masked_bce  # noqa: E402

EPOCHS, BATCH, N_TRAIN = 3, 4, 24  # 6 steps per epoch


class Slow(Callback):
    def __init__(self, after: int) -> None:
        self.after = after

    def on_batch_end(self, trainer, out):
        if self.after and trainer.state.step >= self.after:
            time.sleep(0.5)


def main() -> None:
    run_dir = Path(sys.argv[1])
    slow_after = int(sys.argv[3]) if len(sys.argv) > 3 else 0

    def emit(event):
        if event["event"] == "log" and event["message"].startswith("checkpoint saved"):
            step = event["message"].split("step=")[1].split()[0]
            print(f"CKPT {step}", flush=True)

    seed_everything(7)
    model = TinyNet(dropout=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = build_scheduler(
        "warmup_cosine", opt, params={"warmup_steps": 3}, steps_per_epoch=6, epochs=EPOCHS
    )
    ckpt = Checkpointer(run_dir / "checkpoints", every_steps=4, every_epochs=1, metric="val_iou")
    trainer = Trainer(
        model,
        opt,
        masked_bce,
        scheduler=sched,
        seed=7,
        batch_size=BATCH,
        epochs=EPOCHS,
        grad_clip_norm=0.5,
        reporter=CallbackReporter(emit),
        callbacks=[
            EarlyStopping("val_loss", patience=10),
            JsonLogger(run_dir / "metrics.jsonl", 1),
            Slow(slow_after),
            ckpt,
        ],
    )
    if ckpt.last_path.exists():
        state = load_checkpoint(ckpt.last_path)
        print(f"RESUME {state['trainer']['step']} {state['trainer']['batch']}", flush=True)
        trainer.load_state_dict(state)
    trainer.fit(MemoryTiles(N_TRAIN, augment=True, seed=3), MemoryTiles(4, seed=4))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
