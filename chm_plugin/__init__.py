"""Canopy gaps: a QGIS Processing provider for the ``canopygaps`` engine.

Importing this package imports neither torch nor rasterio nor the engine: algorithms map their
parameters to one engine request, and the runner starts the engine only when one runs.
"""


def classFactory(iface):
    """QGIS plugin entry point."""
    from chm_plugin.plugin import CanopyGapsPlugin

    return CanopyGapsPlugin(iface)
