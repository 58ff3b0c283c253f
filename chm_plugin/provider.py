"""The Canopy gaps Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider, QgsRasterFileWriter, QgsVectorFileWriter
from qgis.PyQt.QtGui import QIcon

from chm_plugin import settings
from chm_plugin.paths import PLUGIN_DIR

PROVIDER_ID = "canopygaps"


def plugin_version() -> str:
    """The ``version`` of metadata.txt."""
    try:
        for line in (PLUGIN_DIR / "metadata.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "0"


class CanopyGapsProvider(QgsProcessingProvider):
    """Forest canopy gap maps from DSMs: dataset, training, inference, evaluation."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "Canopy gaps"

    def longName(self) -> str:
        return f"Canopy gaps {plugin_version()} (forest gap masks from DSMs)"

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def svgIconPath(self) -> str:
        return str(PLUGIN_DIR / "icon.svg")

    def load(self) -> bool:
        settings.register()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        settings.unregister()

    def supportsNonFileBasedOutput(self) -> bool:
        return False  # the engine writes files, never memory layers

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        # GeoTIFF is what the engine writes; other formats are converted (chm_plugin.outputs)
        others = [e for e in QgsRasterFileWriter.supportedFormatExtensions() if e != "tif"]
        return ["tif", *dict.fromkeys(others)]

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        others = [e for e in QgsVectorFileWriter.supportedFormatExtensions() if e != "gpkg"]
        return ["gpkg", *dict.fromkeys(others)]

    def loadAlgorithms(self) -> None:
        from chm_plugin.algorithms import ALGORITHMS
        from chm_plugin.modeler import load_chain

        for cls in ALGORITHMS:
            self.addAlgorithm(cls())
        chain = load_chain()
        if chain is not None:
            self.addAlgorithm(chain)
