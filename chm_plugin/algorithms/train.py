"""Train: a gap model from a dataset folder; writes one .safetensors model file."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import (
    EngineAlgorithm,
    apply_options,
    thresholds_list,
)
from chm_plugin.backends import EngineRequest
from chm_plugin.inputs import file_path

MODELS = ["unet", "resunet_attention", "film_unet", "deeplab_lite"]
DEVICES = ["auto", "cpu", "cuda"]
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
LOSSES = ["focal_dice", "focal", "dice", "bce"]


class TrainAlgorithm(EngineAlgorithm):
    NAME = "train"
    DISPLAY = "Train gap model"
    GROUP = "Deep learning"
    GROUP_ID = "deeplearning"
    HELP = (
        "Trains a gap model on a dataset folder made by 'Build training dataset' and writes a "
        "model file (.safetensors, with a .json description next to it) that 'Predict gap "
        "masks' and 'Evaluate gap masks' take. Checkpoints, metrics and TensorBoard logs go to "
        "a run folder next to the model file. A GPU (device auto/cuda) is much faster; on a "
        "CPU keep the model small (base channels 8-16) and the epochs few."
    )
    DATASET, OUTPUT = "DATASET", "OUTPUT"
    ARCHITECTURE, BASE_CHANNELS, DEPTH = "ARCHITECTURE", "BASE_CHANNELS", "DEPTH"
    EPOCHS, MAX_STEPS, BATCH_SIZE, LEARNING_RATE = (
        "EPOCHS",
        "MAX_STEPS",
        "BATCH_SIZE",
        "LEARNING_RATE",
    )
    THRESHOLDS, DEVICE, PRECISION, LOSS = "THRESHOLDS", "DEVICE", "PRECISION", "LOSS"
    AUGMENT, SEED, TENSORBOARD, RUN_DIR, OPTIONS = (
        "AUGMENT",
        "SEED",
        "TENSORBOARD",
        "RUN_DIR",
        "OPTIONS",
    )

    def init_parameters(self) -> None:
        num = QgsProcessingParameterNumber
        self.add(
            QgsProcessingParameterFile(
                self.DATASET, self.tr("Dataset folder"), behavior=QgsProcessingParameterFile.Folder
            ),
            "Folder written by 'Build training dataset' (holds manifest.json).",
        )
        self.add(
            QgsProcessingParameterEnum(self.ARCHITECTURE, self.tr("Model"), MODELS, defaultValue=0),
            "Architecture: unet (default), resunet_attention (residual U-Net with attention "
            "gates), film_unet (threshold-conditioned: any threshold at inference), "
            "deeplab_lite.",
        )
        self.add(
            num(self.EPOCHS, self.tr("Epochs"), num.Integer, 30, False, 1),
            "Passes over the training tiles.",
        )
        self.add(
            num(self.BATCH_SIZE, self.tr("Batch size"), num.Integer, 8, False, 1),
            "Tiles per optimizer step (lower it when memory runs out).",
        )
        self.add(
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), DEVICES, defaultValue=0),
            "auto = the GPU when CUDA is available, else the CPU.",
        )
        self.add(
            num(self.BASE_CHANNELS, self.tr("Base channels"), num.Integer, 16, False, 2),
            "Width of the first layer; the model's size grows with its square.",
            advanced=True,
        )
        self.add(
            num(self.DEPTH, self.tr("Depth"), num.Integer, 4, False, 1, 7),
            "Down-sampling steps; the tile size must be a multiple of 2^depth.",
            advanced=True,
        )
        self.add(
            num(self.LEARNING_RATE, self.tr("Learning rate"), num.Double, 1e-3, False, 1e-7),
            "Peak learning rate (AdamW, warm-up then cosine decay).",
            advanced=True,
        )
        self.add(
            num(self.MAX_STEPS, self.tr("Stop after steps"), num.Integer, 0, False, 0),
            "Stop after this many optimizer steps (0 = no limit; for quick trials).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterString(
                self.THRESHOLDS, self.tr("Thresholds (m)"), "", optional=True
            ),
            "Comma-separated subset of the dataset's thresholds to train (empty = all).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.PRECISION, self.tr("Precision"), PRECISIONS, defaultValue=0
            ),
            "auto = bf16 on GPUs that support it (else fp16), fp32 on the CPU.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(self.LOSS, self.tr("Loss"), LOSSES, defaultValue=0),
            "Training loss: focal + Dice (default), focal, Dice or binary cross-entropy.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(self.AUGMENT, self.tr("Augment tiles"), True),
            "Random flips and rotations of the training tiles.",
            advanced=True,
        )
        self.add(
            num(self.SEED, self.tr("Random seed"), num.Integer, 0, False),
            "Seed of initialisation, data order and augmentation.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(self.TENSORBOARD, self.tr("TensorBoard logs"), True),
            "Write TensorBoard event files into the run folder.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFile(
                self.RUN_DIR,
                self.tr("Run folder"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            ),
            "Folder for checkpoints, metrics and logs (empty = <model name>-run next to the "
            "model file; an existing run there is resumed).",
            advanced=True,
        )
        self.add_options("optimizer.weight_decay=0.01; early_stopping.patience=5")
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Model file"), "Model files (*.safetensors)"
            ),
            "The trained model (.safetensors; a .json description is written next to it).",
        )
        self.add_output_help(
            QgsProcessingOutputFolder("RUN_FOLDER", self.tr("Run folder")),
            "Checkpoints, metrics.jsonl and TensorBoard logs.",
        )
        self.add_output_help(
            QgsProcessingOutputFile("DESCRIPTION", self.tr("Model description")),
            "The model's JSON description (thresholds, normalisation, metrics).",
        )

    def build_request(self, parameters, context, feedback):
        dataset = file_path(
            self.parameterAsFile(parameters, self.DATASET, context), "dataset folder"
        )
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".safetensors"):
            output += ".safetensors"
        max_steps = self.parameterAsInt(parameters, self.MAX_STEPS, context)
        params = {
            "dataset": dataset,
            "output": output,
            "model": {
                "name": MODELS[self.parameterAsEnum(parameters, self.ARCHITECTURE, context)],
                "args": {
                    "base_channels": self.parameterAsInt(parameters, self.BASE_CHANNELS, context),
                    "depth": self.parameterAsInt(parameters, self.DEPTH, context),
                },
            },
            "epochs": self.parameterAsInt(parameters, self.EPOCHS, context),
            "max_steps": max_steps or None,
            "batch_size": self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            "optimizer": {"lr": self.parameterAsDouble(parameters, self.LEARNING_RATE, context)},
            "loss": {"name": LOSSES[self.parameterAsEnum(parameters, self.LOSS, context)]},
            "device": DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            "precision": PRECISIONS[self.parameterAsEnum(parameters, self.PRECISION, context)],
            "augment": self.parameterAsBoolean(parameters, self.AUGMENT, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "tensorboard": self.parameterAsBoolean(parameters, self.TENSORBOARD, context),
            "progress_bar": False,
        }
        thresholds = thresholds_list(self.parameterAsString(parameters, self.THRESHOLDS, context))
        if thresholds:
            params["thresholds"] = thresholds
        run_dir = self.parameterAsFile(parameters, self.RUN_DIR, context)
        outputs = [output]
        if run_dir:
            params["run_dir"] = run_dir
            outputs.append(run_dir)
        else:
            from pathlib import Path

            out = Path(output)
            outputs.append(str(out.with_name(out.stem + "-run")))
        apply_options(params, self.parameterAsString(parameters, self.OPTIONS, context))
        return EngineRequest("train", params, inputs=[dataset], outputs=outputs)

    def outputs(self, result, parameters, context, feedback):
        metrics = result.get("metrics") or {}
        for split, values in metrics.items():
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
