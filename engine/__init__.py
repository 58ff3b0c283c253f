"""canopygaps engine: canopy gap masks at several height thresholds from a DSM.

Headless: never imports qgis. Sub-packages, one concept each:

- ``engine.io``          the only code that opens files (rasters, vectors, atomic writes)
- ``engine.data``        gap labels, normalisation, tiling, splits, synthetic scenes, datasets
- ``engine.features``    ground estimates, the adaptive classical method, model input channels
- ``engine.models``      model registry, blocks, model files (safetensors + JSON)
- ``engine.losses``      focal, dice, combined and adaptive losses
- ``engine.training``    Trainer, callbacks, schedulers, checkpoints, DDP
- ``engine.inference``   streaming tiled prediction, classical baseline, polygons
- ``engine.evaluation``  confusion counts, metrics, reports
- ``engine.api``         one request in, one result out (used by the CLI and the QGIS plugin)
"""

__version__ = "0.2.1"

__all__ = ["__version__"]
