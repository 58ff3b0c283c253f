"""The algorithm dialog, the batch dialog and every parameter widget build headless."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def iface_ready(qgis_iface):
    """processing.gui dialogs read iface; pytest-qgis's stand-in lacks browserModel()."""
    import qgis.utils
    from qgis.gui import QgsBrowserGuiModel

    if not hasattr(qgis_iface, "browserModel"):
        model = QgsBrowserGuiModel()
        qgis_iface.browserModel = lambda: model
    qgis.utils.iface = qgis_iface
    return qgis_iface


def test_algorithm_and_batch_dialogs_build(provider, iface_ready, qgis_parent):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

    for alg in provider.algorithms():
        dialog = AlgorithmDialog(alg.create(), parent=qgis_parent)
        assert dialog.mainWidget() is not None, alg.id()
        panel = dialog.mainWidget()
        shown = set(panel.wrappers) | set(getattr(panel, "output_widgets", {}))
        expected = {p.name() for p in alg.parameterDefinitions()}
        assert expected <= shown, (alg.id(), expected - shown)
        dialog.close()
        dialog.deleteLater()
        batch = BatchAlgorithmDialog(alg.create(), parent=qgis_parent)
        assert batch.mainWidget() is not None, alg.id()
        batch.close()
        batch.deleteLater()


def test_parameter_widgets_from_the_gui_registry(provider, qgis_parent):
    from qgis.core import QgsProcessingContext
    from qgis.gui import QgsGui, QgsProcessingGui

    context = QgsProcessingContext()
    registry = QgsGui.processingGuiRegistry()
    for alg in provider.algorithms():
        for param in alg.parameterDefinitions():
            for kind in (
                QgsProcessingGui.Standard,
                QgsProcessingGui.Batch,
                QgsProcessingGui.Modeler,
            ):
                wrapper = registry.createParameterWidgetWrapper(param, kind)
                if wrapper is None:  # Python-side wrapper types (processing.gui.wrappers)
                    continue
                widget = wrapper.createWrappedWidget(context)
                if param.isDestination() and kind != QgsProcessingGui.Standard:
                    continue  # batch and modeler show outputs with their own (Python) widgets
                assert widget is not None, (alg.id(), param.name(), kind)
