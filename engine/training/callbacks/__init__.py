"""Training callbacks: logging, TensorBoard, checkpoints, early stopping, progress and cancel."""

from engine.training.callbacks.base import Callback, StepOutput, improved, monitor_mode
from engine.training.callbacks.checkpointing import Checkpointer
from engine.training.callbacks.early_stopping import EarlyStopping
from engine.training.callbacks.logging import ConsoleLogger, JsonLogger
from engine.training.callbacks.progress import ReporterProgress, TerminalProgress
from engine.training.callbacks.tensorboard import TensorBoardLogger

__all__ = [
    "Callback",
    "Checkpointer",
    "ConsoleLogger",
    "EarlyStopping",
    "JsonLogger",
    "ReporterProgress",
    "StepOutput",
    "TensorBoardLogger",
    "TerminalProgress",
    "improved",
    "monitor_mode",
]
