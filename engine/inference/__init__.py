"""Gap maps from DSMs of any size: model inference (``infer``) and the classical method.

Modules (array-level first, files last):

* :class:`engine.data.tiling.TilePlan` - window plan (tiles, margins, blend weights, row bands),
  in the engine's one tiling module.
* :mod:`~engine.inference.stitch` - rolling accumulator turning tile rows into row bands.
* :mod:`~engine.inference.stream` - low-surface pass, prefetching reader thread, batched model.
* :mod:`~engine.inference.device`, :mod:`~engine.inference.predictor` - device, precision, forward.
* :mod:`~engine.inference.onnx_predictor` - the same forward with onnxruntime (CPU default),
  ONNX export cache.
* :mod:`~engine.inference.postprocess` - min gap area and hole filling by row bands.
* :mod:`~engine.inference.classical_core` - the classical method on arrays.
* :mod:`~engine.inference.pipeline` - row bands to files (parts, assembly, polygons).
* :mod:`~engine.inference.command` (``InferConfig``, ``run_infer``) and
  :mod:`~engine.inference.classical` (``ClassicalConfig``, ``run_classical``,
  ``classical_heights``) - the commands.

Importing this package does not import torch or rasterio.
"""
