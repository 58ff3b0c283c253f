"""The graphical-modeler chain shipped in ``resources/canopygaps_chain.model3``.

Build training dataset -> Train gap model -> Predict gap masks -> Evaluate gap masks, wired
through the dataset folder and the model file (train's file destination is infer's file input).
The chain's inputs are copies of the child algorithms' own parameters (same defaults, bounds
and help), every other child parameter is stored with its default, so the model validates.
The provider offers it in the toolbox under Canopy gaps > Models (:class:`ChainModel`).
Rebuild the .model3 after changing algorithm parameters: ``python -m chm_plugin.modeler``
(needs QGIS; it registers the provider itself).
"""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
)
from qgis.PyQt.QtCore import QPointF
from qgis.PyQt.QtGui import QIcon

MODEL_FILE = "canopygaps_chain.model3"
MODEL_NAME = "chain"
MODEL_DISPLAY = "Dataset, training, prediction, evaluation (chain)"
GROUP, GROUP_ID = "Models", "models"
SHORT = "Trains a gap model on one site and evaluates its predictions there, in one run."
HELP = (
    "From a DSM and reference heights (a CHM, or a DTM giving CHM = DSM - DTM): 'Build training "
    "dataset' cuts and labels tiles, 'Train gap model' trains a model, 'Predict gap masks' runs "
    "it on the DSM and 'Evaluate gap masks' compares the masks with the reference. The "
    "evaluation includes the tiles the model was trained on, so it is optimistic: evaluate on "
    "another site with 'Evaluate gap masks' and the model file.\n"
    "Open it in the graphical modeler (Edit Model) to change the settings the chain does not "
    "expose."
)
_src = QgsProcessingModelChildParameterSource
# chain input -> (child algorithm whose parameter it copies, that parameter)
INPUTS = {
    "DSM": ("preprocess", "DSM"),
    "REFERENCE": ("preprocess", "REFERENCE"),
    "REFERENCE_KIND": ("preprocess", "REFERENCE_KIND"),
    "THRESHOLDS": ("preprocess", "THRESHOLDS"),
    "TILE_SIZE": ("preprocess", "TILE_SIZE"),
    "EPOCHS": ("train", "EPOCHS"),
    "MAX_STEPS": ("train", "MAX_STEPS"),
    "BASE_CHANNELS": ("train", "BASE_CHANNELS"),
    "DEPTH": ("train", "DEPTH"),
}
# a child parameter's source: a chain input's name, or (child id, that child's output)
Source = str | tuple[str, str]
# child id -> (algorithm, description, {parameter: source}, {model output: (child output, label)})
CHILDREN: dict[str, tuple[str, str, dict[str, Source], dict[str, tuple[str, str]]]] = {
    "preprocess": (
        "canopygaps:preprocess",
        "Build training dataset",
        {n: n for n in ("DSM", "REFERENCE", "REFERENCE_KIND", "THRESHOLDS", "TILE_SIZE")},
        {"Dataset": ("OUTPUT", "Dataset folder")},
    ),
    "train": (
        "canopygaps:train",
        "Train gap model",
        {
            "DATASET": ("preprocess", "OUTPUT"),
            **{n: n for n in ("EPOCHS", "MAX_STEPS", "BASE_CHANNELS", "DEPTH")},
        },
        {"Model": ("OUTPUT", "Model file")},
    ),
    "infer": (
        "canopygaps:infer",
        "Predict gap masks",
        {"DSM": "DSM", "MODEL": ("train", "OUTPUT")},
        {"Gaps": ("OUTPUT", "Gap mask")},
    ),
    "evaluate": (
        "canopygaps:evaluate",
        "Evaluate gap masks",
        {
            "PREDICTION": ("infer", "OUTPUT"),
            "DSM": "DSM",
            "REFERENCE": "REFERENCE",
            "REFERENCE_KIND": "REFERENCE_KIND",
        },
        {"Report": ("OUTPUT", "Evaluation report folder")},
    ),
}


def _algorithm(alg_id: str) -> QgsProcessingAlgorithm:
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    if alg is None:
        raise RuntimeError(f"{alg_id} is not registered: register the Canopy gaps provider.")
    return alg


def _child(child_id: str, y: float) -> QgsProcessingModelChildAlgorithm:
    alg_id, description, wiring, outputs = CHILDREN[child_id]
    child = QgsProcessingModelChildAlgorithm(alg_id)
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(QPointF(400, y))
    for param in _algorithm(alg_id).parameterDefinitions():
        source = wiring.get(param.name())
        if isinstance(source, tuple):
            child.addParameterSources(param.name(), [_src.fromChildOutput(*source)])
        elif source is not None:
            child.addParameterSources(param.name(), [_src.fromModelParameter(source)])
        elif not param.isDestination():
            child.addParameterSources(param.name(), [_src.fromStaticValue(param.defaultValue())])
    model_outputs = {}
    for name, (child_output, label) in outputs.items():
        out = QgsProcessingModelOutput(name, label)
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        out.setPosition(QPointF(640, y + 40))
        model_outputs[name] = out
    child.setModelOutputs(model_outputs)
    return child


def build_chain_model() -> QgsProcessingModelAlgorithm:
    """The chain as a model algorithm (the Canopy gaps provider must be registered)."""
    model = QgsProcessingModelAlgorithm(MODEL_NAME, GROUP, GROUP_ID)
    help_content = {"ALG_DESC": HELP, "ALG_CREATOR": "canopygaps", "ALG_HELP_CREATOR": ""}
    for i, (name, (child_id, source)) in enumerate(INPUTS.items()):
        param = _algorithm(CHILDREN[child_id][0]).parameterDefinition(source).clone()
        param.setName(name)
        component = QgsProcessingModelParameter(name)
        component.setPosition(QPointF(100, 60 + 80 * i))
        model.addModelParameter(param, component)
        help_content[name] = param.help()
    model.setHelpContent(help_content)
    for i, child_id in enumerate(CHILDREN):
        model.addChildAlgorithm(_child(child_id, 60 + 160 * i))
    return model


class ChainModel(QgsProcessingModelAlgorithm):
    """The shipped chain as the provider offers it: a plain id (``canopygaps:chain``), a
    readable name, and plain-text help like the other algorithms."""

    def name(self) -> str:
        return MODEL_NAME

    def displayName(self) -> str:
        return MODEL_DISPLAY

    def group(self) -> str:
        return GROUP

    def groupId(self) -> str:
        return GROUP_ID

    def shortDescription(self) -> str:
        return SHORT

    def shortHelpString(self) -> str:
        return HELP

    def tags(self) -> list[str]:
        return ["canopy", "gap", "forest", "model", "chain", "training", "evaluation"]

    def icon(self) -> QIcon:
        from chm_plugin.paths import icon_path

        return QIcon(icon_path("chain"))

    def svgIconPath(self) -> str:
        from chm_plugin.paths import icon_path

        return icon_path("chain")

    def helpUrl(self) -> str:
        from chm_plugin.paths import help_url

        return help_url("the-chain-dataset-training-prediction-evaluation")

    def createInstance(self):
        copy = ChainModel()
        copy.loadVariant(self.toVariant())
        return copy


def load_chain() -> ChainModel | None:
    """The shipped chain, or None when the plugin was packaged without it."""
    from chm_plugin.paths import resource

    path = resource(MODEL_FILE)
    model = ChainModel()
    return model if path is not None and model.fromFile(str(path)) else None


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - developer tool
    import os
    import sys

    args = sys.argv[1:] if argv is None else argv
    if os.environ.get("QT_HASH_SEED") != "0":  # Qt writes XML attributes in hash order
        env = {**os.environ, "QT_HASH_SEED": "0"}
        os.execve(sys.executable, [sys.executable, "-m", "chm_plugin.modeler", *args], env)

    from chm_plugin.provider import CanopyGapsProvider

    app = QgsApplication([], False)
    app.initQgis()
    provider = CanopyGapsProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    target = args[0] if args else "resources/" + MODEL_FILE
    ok = build_chain_model().toFile(target)
    print(("wrote " if ok else "could not write ") + target)
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
