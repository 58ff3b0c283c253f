"""Gap maps from DSMs of any size: model inference (``infer``) and the classical method.

Modules (array-level first, files last):

* :class:`engine.data.tiling.TilePlan` - window plan (tiles, margins, blend weights, row bands),
  in the engine's one tiling module.
* :mod:`~engine.inference.stitch` - rolling accumulator turning tile rows into row bands.
* :mod:`~engine.inference.stream` - low-surface pass, prefetching reader thread, batched model.
* :mod:`~engine.inference.device`, :mod:`~engine.inference.predictor` - device, precision, the
  model runners' base ``TilePredictor`` and the torch forward.
* :mod:`~engine.inference.onnx_predictor` - the same forward with onnxruntime (CPU default),
  ONNX export cache.
* :mod:`~engine.inference.postprocess` - min gap area and hole filling by row bands.
* :mod:`~engine.inference.classical_core` - the classical method on arrays.
* :mod:`~engine.inference.pipeline` - one DSM's row bands to files (parts, assembly, polygons),
  for both commands.
* :mod:`~engine.inference.batch` - the run over one or several DSMs, all outputs or none, and
  its result, for both commands.
* :mod:`~engine.inference.config` - the settings (``InferConfig``, ``ClassicalConfig``).
* :mod:`~engine.inference.command` (``run_infer``) and :mod:`~engine.inference.classical`
  (``run_classical``) - the commands.

Importing this package does not import torch or rasterio.
"""
