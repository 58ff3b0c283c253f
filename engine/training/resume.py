"""Resuming a training run from its run folder's last checkpoint.

``resume: true`` needs the checkpoint, ``auto`` uses it when present, ``false`` starts afresh.
A resumed run must keep the settings the checkpoint restores (:data:`RESUME_FIXED`); changing
them is an error rather than a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ConfigError, InputError
from engine.training.config import TrainConfig

CHECKPOINTS = "checkpoints"
"""Sub-folder of the run folder holding the checkpoints."""

RESUME_FIXED = ("model", "loss", "optimizer", "scheduler", "thresholds", "batch_size")
"""Settings a resumed run cannot change: the checkpoint restores the model, loss, optimizer
(learning rate, betas, weight decay) and scheduler states over the new values, and its data
position counts batches of the old size. ``epochs`` may grow (continue a finished run): the
schedule is then followed for the new length from the restored step."""


def resume_path(config: TrainConfig, run_dir: Path) -> Path | None:
    """The checkpoint to resume from, or None to start afresh (``resume: true`` needs one)."""
    from engine.training.callbacks.checkpointing import LAST

    last = run_dir / CHECKPOINTS / LAST
    if config.resume is True and not last.is_file():
        raise ConfigError(
            f"Config key 'resume' = true but there is no checkpoint {last}.",
            "Use resume: auto to start afresh when there is none.",
        )
    return last if config.resume in (True, "auto") and last.is_file() else None


def _changes(old: Any, new: Any, key: str) -> list[str]:
    """Dotted keys whose values differ between two plain-data configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            c
            for k in sorted(set(old) | set(new))
            for c in _changes(old.get(k), new.get(k), f"{key}.{k}")
        ]
    return [] if old == new else [f"{key}: {old!r} -> {new!r}"]


def check_resume_settings(config: TrainConfig, saved: Path) -> None:
    """:class:`ConfigError` when resuming with settings of :data:`RESUME_FIXED` changed from
    those of the run that wrote the checkpoint (its ``config.yaml``): they would be overridden
    by the checkpoint, or give a different schedule, while the model file would record them."""
    import yaml

    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return  # nothing recorded to compare with
    if not isinstance(old, dict):
        return
    new = config.to_dict()
    changed = [c for k in RESUME_FIXED if k in old for c in _changes(old[k], new.get(k), k)]
    if changed:
        raise ConfigError(
            "Resuming this run would keep the checkpoint's training state, not these changed "
            f"settings: {'; '.join(changed)}.",
            f"Resume with the run's settings ({saved}), or train afresh with the new ones "
            "(resume: false, or another run_dir).",
        )


def restore(trainer: Any, path: Path) -> None:
    """Load the checkpoint ``path`` into ``trainer``; :class:`InputError` when it does not fit."""
    from engine.training.checkpoint import load_checkpoint

    state = load_checkpoint(path, device="cpu")
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InputError(
            f"The checkpoint {path} does not fit this configuration ({str(exc).splitlines()[0]}).",
            "Set resume: false to start afresh, or use another run_dir.",
        ) from exc
