"""Training: a small Trainer loop, behaviour in callbacks, pickle-free resumable checkpoints.

- :mod:`engine.training.config`      ``TrainConfig`` (the ``train`` command's settings)
- :mod:`engine.training.command`     ``run_train(config, reporter)``: the pipeline of steps
- :mod:`engine.training.datasets`    thresholds to train, train/val/test splits of a dataset
- :mod:`engine.training.feature_args` ``ground_residual`` head arguments from feature channels
- :mod:`engine.training.build`       device, optimizer and callbacks of a run
- :mod:`engine.training.resume`      resuming from the run folder's last checkpoint
- :mod:`engine.training.output`      the run's result and the model file it writes
- :mod:`engine.training.trainer`     ``Trainer`` (fit/validate/test, AMP, clipping, state)
- :mod:`engine.training.precision`   mixed-precision settings (fp32, bf16, fp16 + scaler)
- :mod:`engine.training.loss_terms`  loss total and components, canopy height L1 term
- :mod:`engine.training.callbacks`   logging, TensorBoard, checkpoints, early stopping, progress
- :mod:`engine.training.schedulers`  ``build_scheduler`` over torch's LR schedulers
- :mod:`engine.training.checkpoint`  ``save_checkpoint``/``load_checkpoint`` (safetensors + JSON)
- :mod:`engine.training.loaders`     seeded, resumable DataLoaders (DistributedSampler inside)
- :mod:`engine.training.seed`        seeding, per-item seeds, RNG state capture
- :mod:`engine.training.distributed` DDP under torchrun (gloo on CPU, nccl on CUDA)

Submodules are imported on use; ``import engine.training`` alone does not import torch.
"""
