"""The QGIS plugin object: registers one Processing provider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qgis.core import QgsApplication

if TYPE_CHECKING:
    from chm_plugin.provider import CanopyGapsProvider

FIRST_RUN = (
    "The Canopy gaps engine has no Python to run in yet. Run 'Install engine' once "
    "(Processing Toolbox > Canopy gaps > Tools)."
)


def needs_install() -> bool:
    """True when the subprocess backend (the default) would find no engine Python."""
    from chm_plugin import settings

    current = settings.current()
    return current.backend == "subprocess" and not current.python


class CanopyGapsPlugin:
    """Registers the Canopy gaps Processing provider (GUI and qgis_process)."""

    def __init__(self, iface: Any = None) -> None:
        self.iface = iface
        self.provider: CanopyGapsProvider | None = None

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
        """Called by QGIS desktop: the provider, and the first-run hint when needed."""
        self.initProcessing()
        if self.iface is not None and needs_install():
            from qgis.core import Qgis

            self.iface.messageBar().pushMessage("Canopy gaps", FIRST_RUN, Qgis.Info, 0)

    def unload(self) -> None:
        """Remove the provider."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
