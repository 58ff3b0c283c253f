"""Train: a gap model from a dataset folder; writes one .safetensors model file."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.algorithms.params import EngineParam as P
from chm_plugin.inputs import file_path

ARCHITECTURE_HELP = (
    "unet (default), resunet_attention (residual U-Net with attention gates), film_unet "
    "(threshold-conditioned: predicts at any threshold), deeplab_lite. Models with a height or "
    "residual_height head (chosen in 'More engine settings') also predict at any threshold."
)
# In dialog order; rare settings under Advanced.
SETTINGS = (
    P("ARCHITECTURE", "model.name", "Model", help=ARCHITECTURE_HELP),
    P("EPOCHS", "epochs", "Epochs", help="Passes over the training tiles."),
    P(
        "BATCH_SIZE",
        "batch_size",
        "Batch size",
        help="Tiles per optimizer step (lower it when memory runs out).",
    ),
    P("DEVICE", "device", "Device", help="auto = the GPU when CUDA is available, else the CPU."),
    P("BASE_CHANNELS", "model.args.base_channels", "Base channels", True),
    P(
        "DEPTH",
        "model.args.depth",
        "Depth",
        True,
        "Down-sampling steps; the dataset's tile size must be a multiple of 2^depth.",
    ),
    P(
        "LEARNING_RATE",
        "optimizer.lr",
        "Learning rate",
        True,
        "Peak learning rate (AdamW, warm-up then cosine decay).",
    ),
    P(
        "MAX_STEPS",
        "max_steps",
        "Stop after steps",
        True,
        "Stop after this many optimizer steps (empty = no limit; for quick trials).",
    ),
    P(
        "THRESHOLDS",
        "thresholds",
        "Thresholds (m)",
        True,
        "Comma-separated subset of the dataset's thresholds to train (empty = all).",
    ),
    P("PRECISION", "precision", "Precision", True),
    P(
        "LOSS",
        "loss.name",
        "Loss",
        True,
        "focal_dice = focal + Dice (default), focal, dice, or bce (binary cross-entropy).",
    ),
    P("AUGMENT", "augment", "Augment tiles", True),
    P("SEED", "seed", "Random seed", True),
    P(
        "TENSORBOARD",
        "tensorboard",
        "TensorBoard logs",
        True,
        "Write TensorBoard event files into the run folder.",
    ),
)


class TrainAlgorithm(EngineAlgorithm):
    NAME = "train"
    COMMAND = "train"
    DISPLAY = "Train gap model"
    GROUP, GROUP_ID = "Deep learning", "deeplearning"
    ANCHOR = "train-gap-model-train"
    ICON = "train"
    TAGS = ("canopy", "gap", "forest", "deep learning", "training", "model", "u-net", "torch")
    SHORT = "Trains a gap model on a dataset folder and writes a model file."
    HELP = (
        "Takes the dataset folder of 'Build training dataset' and writes a model file "
        "(.safetensors, with a .json description next to it) that 'Predict gap masks' and "
        "'Evaluate gap masks' take. Checkpoints, metrics and TensorBoard logs go to a run "
        "folder next to the model file; an interrupted run there is resumed.\n"
        "A GPU (device auto or cuda) is much faster. On a CPU keep the model small (base "
        "channels 8-16) and the epochs few: the bundled model (16 base channels) trained in "
        "5-18 minutes (1000 steps of 8 tiles) on 2 CPU cores, by CPU."
    )
    DATASET, OUTPUT, RUN_DIR = "DATASET", "OUTPUT", "RUN_DIR"

    def init_parameters(self) -> None:
        self.add(
            QgsProcessingParameterFile(
                self.DATASET, self.tr("Dataset folder"), behavior=QgsProcessingParameterFile.Folder
            ),
            "Folder written by 'Build training dataset' (holds manifest.json).",
            key="dataset",
        )
        for spec in SETTINGS:
            self.add_engine(spec)
        self.add(
            QgsProcessingParameterFile(
                self.RUN_DIR,
                self.tr("Run folder"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            ),
            "Folder for checkpoints, metrics and logs (empty = next to the model file, named "
            "after it with '-run' added; an existing run there is resumed).",
            advanced=True,
            key="run_dir",
        )
        self.add_options()
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Model file"), "Model files (*.safetensors)"
            ),
            "The trained model (.safetensors; a .json description is written next to it).",
            key="output",
        )
        self.addOutput(QgsProcessingOutputFolder("RUN_FOLDER", self.tr("Run folder")))
        self.addOutput(QgsProcessingOutputFile("DESCRIPTION", self.tr("Model description")))

    def build_request(self, parameters, context, feedback):
        dataset = file_path(
            self.parameterAsFile(parameters, self.DATASET, context), "dataset folder"
        )
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".safetensors"):
            output += ".safetensors"
        params = self.engine_params(parameters, context)
        params.update(dataset=dataset, output=output, progress_bar=False)
        outputs = [output]
        run_dir = self.parameterAsFile(parameters, self.RUN_DIR, context)
        if run_dir:
            params["run_dir"] = run_dir
            outputs.append(run_dir)
        else:
            out = Path(output)
            outputs.append(str(out.with_name(out.stem + "-run")))
        params = self.with_options(params, parameters, context)
        return self.request(params, [dataset], outputs)

    def outputs(self, result, parameters, context, feedback):
        for split, values in (result.get("metrics") or {}).items():
            if isinstance(values, dict):
                shown = ", ".join(
                    f"{k}={v:.3f}" for k, v in values.items() if isinstance(v, (int, float))
                )
                if shown:
                    feedback.pushInfo(f"{split} metrics: {shown}")
        return {
            "OUTPUT": result.get("model"),
            "RUN_FOLDER": result.get("run_dir"),
            "DESCRIPTION": result.get("description"),
        }
