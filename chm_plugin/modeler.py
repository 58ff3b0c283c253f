"""The graphical-modeler chain shipped in ``resources/canopygaps_chain.model3``.

Build training dataset -> Train gap model -> Predict gap masks -> Evaluate gap masks, wired
through the model file (train's file destination is infer's and evaluate's file input). Rebuild
the .model3 after changing algorithm parameters: ``python -m chm_plugin.modeler OUT.model3``
(needs QGIS and the provider registered, which the module does itself).
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QPointF

MODEL_FILE = "canopygaps_chain.model3"
MODEL_NAME = "Canopy gaps: dataset, training, prediction, evaluation"

_src = QgsProcessingModelChildParameterSource


def _input(model, param, x: float, y: float) -> None:
    component = QgsProcessingModelParameter(param.name())
    component.setPosition(QPointF(x, y))
    model.addModelParameter(param, component)


def _child(child_id, alg_id, description, x, y, sources, outputs):
    child = QgsProcessingModelChildAlgorithm(alg_id)
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(QPointF(x, y))
    for name, source in sources.items():
        child.addParameterSources(name, [source])
    model_outputs = {}
    for output_name, (child_output, label) in outputs.items():
        out = QgsProcessingModelOutput(output_name, label)
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        out.setPosition(QPointF(x + 160, y + 60))
        model_outputs[output_name] = out
    child.setModelOutputs(model_outputs)
    return child


def build_chain_model() -> QgsProcessingModelAlgorithm:
    """The chain as a model algorithm (the Canopy gaps provider must be registered)."""
    num = QgsProcessingParameterNumber
    model = QgsProcessingModelAlgorithm(MODEL_NAME, "Canopy gaps", "canopygaps")
    model.setHelpContent(
        {
            "ALG_DESC": "From a DSM and a reference CHM: build a training dataset, train a gap "
            "model, predict gap masks on the DSM and evaluate them against the CHM. Evaluate the "
            "model on other DSMs by running 'Predict gap masks' with the model file.",
        }
    )
    params = [
        (QgsProcessingParameterRasterLayer("DSM", "DSM"), 0, 0),
        (QgsProcessingParameterRasterLayer("REFERENCE", "Reference CHM"), 0, 80),
        (
            QgsProcessingParameterString("THRESHOLDS", "Gap height thresholds (m)", "2,5,10,15,20"),
            0,
            160,
        ),
        (num("TILE_SIZE", "Tile size (pixels)", num.Integer, 256, False, 16), 0, 240),
        (num("EPOCHS", "Epochs", num.Integer, 30, False, 1), 0, 320),
        (num("MAX_STEPS", "Stop after steps (0 = no limit)", num.Integer, 0, False, 0), 0, 400),
        (num("BASE_CHANNELS", "Model base channels", num.Integer, 16, False, 2), 0, 480),
        (num("DEPTH", "Model depth", num.Integer, 4, False, 1, 7), 0, 560),
    ]
    for param, x, y in params:
        _input(model, param, x, y)
    p = _src.fromModelParameter
    model.addChildAlgorithm(
        _child(
            "preprocess",
            "canopygaps:preprocess",
            "Build training dataset",
            300,
            80,
            {
                "DSM": p("DSM"),
                "REFERENCE": p("REFERENCE"),
                "THRESHOLDS": p("THRESHOLDS"),
                "TILE_SIZE": p("TILE_SIZE"),
            },
            {"Dataset": ("OUTPUT", "Dataset folder")},
        )
    )
    model.addChildAlgorithm(
        _child(
            "train",
            "canopygaps:train",
            "Train gap model",
            300,
            240,
            {
                "DATASET": _src.fromChildOutput("preprocess", "OUTPUT"),
                "EPOCHS": p("EPOCHS"),
                "MAX_STEPS": p("MAX_STEPS"),
                "BASE_CHANNELS": p("BASE_CHANNELS"),
                "DEPTH": p("DEPTH"),
            },
            {"Model": ("OUTPUT", "Model file")},
        )
    )
    model.addChildAlgorithm(
        _child(
            "infer",
            "canopygaps:infer",
            "Predict gap masks",
            300,
            400,
            {"DSM": p("DSM"), "MODEL": _src.fromChildOutput("train", "OUTPUT")},
            {"Gaps": ("OUTPUT", "Gap mask")},
        )
    )
    model.addChildAlgorithm(
        _child(
            "evaluate",
            "canopygaps:evaluate",
            "Evaluate gap masks",
            300,
            560,
            {
                "PREDICTION": _src.fromChildOutput("infer", "OUTPUT"),
                "DSM": p("DSM"),
                "REFERENCE": p("REFERENCE"),
            },
            {"Report": ("OUTPUT", "Evaluation report folder")},
        )
    )
    return model


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - developer tool
    import sys

    from qgis.core import QgsApplication

    from chm_plugin.provider import CanopyGapsProvider

    args = sys.argv[1:] if argv is None else argv
    app = QgsApplication([], False)
    app.initQgis()
    provider = CanopyGapsProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    model = build_chain_model()
    ok = model.toFile(args[0] if args else MODEL_FILE)
    print(("wrote " if ok else "could not write ") + (args[0] if args else MODEL_FILE))
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
