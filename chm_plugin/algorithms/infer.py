"""Predict gap masks with a trained model (and optional probabilities and polygons)."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterFile, QgsProcessingParameterRasterDestination

from chm_plugin.algorithms.masks import GapMaskAlgorithm, destination, engine_outputs
from chm_plugin.algorithms.params import EngineParam as P
from chm_plugin.inputs import file_path
from chm_plugin.paths import default_model
from chm_plugin.styles import PROBABILITIES, style_on_load

RUNTIME_HELP = (
    "auto = onnxruntime on the CPU when it is installed and the precision is auto or fp32 "
    "(1.3-1.45x as fast as torch fp32 end to end on the project's benchmark machine, same "
    "masks), torch on GPUs and for bf16/fp16; torch = always torch; onnxruntime = CPU, fp32, "
    "needs the onnxruntime and onnx packages. The model's ONNX export is cached in the user's "
    "cache folder (~/.cache/canopygaps)."
)
THRESHOLDS_HELP = (
    "Comma-separated height thresholds in metres (empty = the model's). Models that predict at "
    "any threshold take any value: film_unet, and models with a height or residual_height "
    "head. Other models, the bundled default model among them (2, 5, 10, 15, 20 m), take a "
    "subset of their own thresholds."
)
# Parameters that only set engine options, in dialog order (rare ones under Advanced).
OPTIONS = (
    P("DEVICE", "device", "Device", True, "auto = the GPU when CUDA is available, else the CPU."),
    P("PRECISION", "precision", "Precision", True),
    P("RUNTIME", "runtime", "Inference runtime", True, RUNTIME_HELP),
    P("TILE_SIZE", "tile_size", "Tile size (pixels)", True),
    P(
        "BATCH_SIZE",
        "batch_size",
        "Batch size (0 = auto)",
        True,
        "Tiles per forward pass; 0 = auto: 1 on a CPU (best there), 8 on a GPU.",
    ),
    P(
        "BLEND",
        "blend",
        "Tile blending",
        True,
        "crop = keep each tile's centre (exact, no seams); ramp = cosine-weighted blend of the "
        "tile overlaps.",
    ),
    P("RESAMPLE", "resample", "Resample to the model's pixel size", True),
    P("PROBABILITY_FORMAT", "probability_format", "Probability format", True),
    P("NUM_THREADS", "num_threads", "CPU threads", True),
)


class InferAlgorithm(GapMaskAlgorithm):
    NAME = "infer"
    COMMAND = "infer"
    DISPLAY = "Predict gap masks"
    GROUP, GROUP_ID = "Deep learning", "deeplearning"
    ANCHOR = "predict-gap-masks-infer"
    ICON = "infer"
    TAGS = ("canopy", "gap", "forest", "dsm", "deep learning", "segmentation", "model", "mask")
    SHORT = "Gap masks at several height thresholds from a DSM, with a trained model."
    HELP = (
        "The DSM is processed in overlapping tiles (no seams) and normalised exactly as in "
        "training, so DSMs of any size work. Writes a gap mask raster with one band per "
        "threshold and, on request, gap probabilities and gap polygons, all loaded into the "
        "project with a style.\n"
        "The model file defaults to the bundled model (a U-Net correcting the adaptive "
        "classical method, trained on seven 1 m lidar sites; held-out IoU 0.91-0.96 at 2-20 m "
        "on Harvard Forest, see its model card). On forests it has never seen it is a little "
        "better than 'Classical gap masks (no model)' (leave-one-site-out means 0.0004-0.005 "
        "IoU above it; from 10 m up also under steep closed canopy). The DSM's pixel size must "
        "match the model's, or tick 'Resample to the model's pixel size'.\n"
        "The engine runs in the Python set up by 'Install engine' unless another backend is "
        "chosen."
    )
    MODEL, THRESHOLDS, PROBABILITIES = "MODEL", "THRESHOLDS", "PROBABILITIES"

    def init_parameters(self) -> None:
        self.add_dsm()
        self.add(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model file"),
                extension="safetensors",
                defaultValue=default_model() or None,
                optional=bool(default_model()),  # QGIS 3.22 checks a missing value, not its default
            ),
            "A .safetensors model file from 'Train gap model' (default: the bundled model).",
            key="model",
        )
        self.add_engine(P(self.THRESHOLDS, "thresholds", "Thresholds (m)", help=THRESHOLDS_HELP))
        self.add_mask_options()
        for spec in OPTIONS:
            self.add_engine(spec)
        self.add_options()
        self.add_mask_outputs()
        self.add(
            QgsProcessingParameterRasterDestination(
                self.PROBABILITIES,
                self.tr("Gap probabilities"),
                optional=True,
                createByDefault=False,
            ),
            "Optional gap probabilities, one band per threshold (see 'Probability format'), in "
            "any raster format QGIS writes.",
            key="probabilities",
        )
        self.add_polygons_output()

    def build_request(self, parameters, context, feedback):
        params, inputs, targets = self.mask_params(parameters, context, feedback)
        model = file_path(
            self.parameterAsFile(parameters, self.MODEL, context), "model file", (".safetensors",)
        )
        params["model"] = model
        inputs.append(model)
        probabilities = destination(self, parameters, self.PROBABILITIES, context)
        if probabilities is not None:
            params["probabilities"] = probabilities.engine_path
            targets[self.PROBABILITIES] = probabilities
        params = self.with_options(params, parameters, context)
        return self.request(params, inputs, engine_outputs(targets), targets)

    def outputs(self, result, parameters, context, feedback):
        out = self.mask_outputs(result, context)
        if result.get("probabilities"):
            out[self.PROBABILITIES] = result["probabilities"]
            style_on_load(context, out[self.PROBABILITIES], PROBABILITIES)
        if result.get("thresholds"):
            feedback.pushInfo(f"Thresholds: {', '.join(f'{t:g}' for t in result['thresholds'])} m")
        return out
