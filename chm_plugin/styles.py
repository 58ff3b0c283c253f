"""Apply the bundled QML styles to output layers loaded into the project."""

from __future__ import annotations

from typing import ClassVar

from qgis.core import QgsProcessingContext, QgsProcessingLayerPostProcessorInterface

from chm_plugin.paths import resource

GAP_MASK = "gap_mask.qml"
PROBABILITIES = "gap_probability.qml"
POLYGONS = "gap_polygons.qml"
CHM = "chm.qml"


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Loads one QML style onto a layer after Processing loads it."""

    # Processing keeps only a raw pointer: keep every instance alive here.
    _alive: ClassVar[list[StylePostProcessor]] = []

    def __init__(self, qml_name: str) -> None:
        super().__init__()
        self.qml_name = qml_name

    def postProcessLayer(self, layer, context, feedback):
        path = resource("styles", self.qml_name)
        if layer is None or path is None:
            return
        message, ok = layer.loadNamedStyle(str(path))
        if not ok and feedback is not None:
            feedback.pushWarning(f"Could not apply the style {path}: {message}")
        layer.triggerRepaint()

    @classmethod
    def create(cls, qml_name: str) -> StylePostProcessor:
        obj = cls(qml_name)
        cls._alive.append(obj)
        del cls._alive[:-64]
        return obj


def style_on_load(
    context: QgsProcessingContext, layer_id: str | None, qml_name: str, name: str = ""
) -> None:
    """Style ``layer_id`` (an output path; None or empty: none) when Processing loads it on
    completion."""
    if layer_id and context.willLoadLayerOnCompletion(layer_id):
        details = context.layerToLoadOnCompletionDetails(layer_id)
        if name:
            details.name = name
        details.setPostProcessor(StylePostProcessor.create(qml_name))
