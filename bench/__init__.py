"""Reproducible benchmark suite of the canopygaps engine (``make bench`` / ``python -m bench.run``).

Modules (one per benchmark, each exposing ``NAME`` and ``run(ctx) -> dict``):

- :mod:`bench.inference`     end-to-end inference Mpx/s (model and classical), forward share
- :mod:`bench.memory`        peak RSS versus raster size (fresh subprocess per run)
- :mod:`bench.seams`         tiled versus whole-image mask agreement
- :mod:`bench.roofline`      FLOPs per pixel, achieved model FLOP/s versus matmul FLOP/s
- :mod:`bench.onnx_runtime`  the same model under onnxruntime versus torch
- :mod:`bench.training`      tiles/s and seconds per epoch, fp32 versus bf16
- :mod:`bench.preprocessing` label generation and tiling Mpx/s

Shared pieces: :mod:`bench.common` (statistics, machine description, child processes),
:mod:`bench.workloads` (seeded, cached DSMs, demo dataset, model file), :mod:`bench.child`
(the subprocess that runs one engine command and reports time and peak RSS),
:mod:`bench.report` (Markdown table). Workloads are cached under ``bench/work/`` (git-ignored).
"""
