"""The QGIS plugin object: registers one Processing provider."""

from __future__ import annotations

from qgis.core import QgsApplication


class CanopyGapsPlugin:
    """Registers the Canopy gaps Processing provider (GUI and qgis_process)."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None

    def initProcessing(self) -> None:
        """Called by QGIS (also headless, by qgis_process) to register the provider."""
        if self.provider is not None:
            return
        from chm_plugin.provider import CanopyGapsProvider

        provider = CanopyGapsProvider()
        # On failure (duplicate id) the registry deletes the object: keep no dangling reference.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider

    def initGui(self) -> None:
        """Called by QGIS desktop; the provider is all this plugin adds."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
