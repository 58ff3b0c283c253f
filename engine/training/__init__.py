"""Training: a small Trainer loop, behaviour in callbacks, pickle-free resumable checkpoints.

- :mod:`engine.training.config`      ``TrainConfig`` (the ``train`` command's settings)
- :mod:`engine.training.command`     ``run_train(config, reporter)``
- :mod:`engine.training.trainer`     ``Trainer`` (fit/validate/test, AMP, clipping, state)
- :mod:`engine.training.callbacks`   logging, TensorBoard, checkpoints, early stopping, progress
- :mod:`engine.training.schedulers`  ``build_scheduler`` over torch's LR schedulers
- :mod:`engine.training.checkpoint`  ``save_checkpoint``/``load_checkpoint`` (safetensors + JSON)
- :mod:`engine.training.loaders`     seeded, resumable DataLoaders (DistributedSampler inside)
- :mod:`engine.training.seed`        seeding, per-item seeds, RNG state capture
- :mod:`engine.training.distributed` DDP under torchrun (gloo on CPU, nccl on CUDA)

Submodules are imported on use; ``import engine.training`` alone does not import torch.
"""
