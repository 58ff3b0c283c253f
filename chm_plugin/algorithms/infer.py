"""Predict gap masks with a trained model (and optional probabilities and polygons)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import apply_options, thresholds_list
from chm_plugin.algorithms.masks import GapMaskAlgorithm, destination
from chm_plugin.backends import EngineRequest
from chm_plugin.inputs import file_path
from chm_plugin.styles import PROBABILITIES, style_on_load

DEVICES = ["auto", "cpu", "cuda"]
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
RUNTIMES = ["auto", "torch", "onnxruntime"]
BLENDS = ["crop", "ramp"]
PROBABILITY_FORMATS = ["float32", "uint8"]


class InferAlgorithm(GapMaskAlgorithm):
    NAME = "infer"
    DISPLAY = "Predict gap masks"
    GROUP = "Deep learning"
    GROUP_ID = "deeplearning"
    HELP = (
        "Predicts canopy gap masks at several height thresholds from a DSM of any size with a "
        "model file from 'Train gap model'. The DSM is processed in overlapping tiles "
        "and normalised exactly as in training. Writes a gap mask GeoTIFF (one band per "
        "threshold), optionally gap probabilities and gap polygons (GeoPackage), all loaded "
        "into the project with a style. The DSM's pixel size must match the model's (or tick "
        "'Resample')."
    )
    MODEL, THRESHOLDS, PROBABILITIES = "MODEL", "THRESHOLDS", "PROBABILITIES"
    DEVICE, PRECISION, TILE_SIZE, BATCH_SIZE = "DEVICE", "PRECISION", "TILE_SIZE", "BATCH_SIZE"
    BLEND, RESAMPLE, PROBABILITY_FORMAT = "BLEND", "RESAMPLE", "PROBABILITY_FORMAT"
    NUM_THREADS, OPTIONS, RUNTIME = "NUM_THREADS", "OPTIONS", "RUNTIME"

    def init_parameters(self) -> None:
        num = QgsProcessingParameterNumber
        self.add_dsm()
        self.add(
            QgsProcessingParameterFile(self.MODEL, self.tr("Model file"), extension="safetensors"),
            "A .safetensors model file written by 'Train gap model'.",
        )
        self.add(
            QgsProcessingParameterString(
                self.THRESHOLDS, self.tr("Thresholds (m)"), "", optional=True
            ),
            "Comma-separated height thresholds in metres (empty = the model's). Any value "
            "for a threshold-conditioned model (film_unet), else a subset of the model's.",
        )
        self.add_mask_options()
        self.add(
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), DEVICES, defaultValue=0),
            "auto = the GPU when CUDA is available, else the CPU.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.PRECISION, self.tr("Precision"), PRECISIONS, defaultValue=0
            ),
            "auto = bf16/fp16 on GPUs, exact fp32 on CPUs; bf16 is faster on CPUs with native "
            "bf16 but its masks differ from fp32 on about 0.02 % of pixels.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.RUNTIME, self.tr("Inference runtime"), RUNTIMES, defaultValue=0
            ),
            "auto = onnxruntime on the CPU when it is installed (about 3x faster than torch "
            "in fp32), torch on GPUs; torch = always torch; onnxruntime = CPU, fp32, needs "
            "the onnxruntime and onnx packages. The ONNX export of the model is cached in "
            "~/.cache/canopygaps.",
            advanced=True,
        )
        self.add(
            num(self.TILE_SIZE, self.tr("Tile size (pixels)"), num.Integer, 512, False, 16),
            "Pixels per tile edge (rounded down to a multiple of 2^depth; smaller rasters "
            "use one tile). Larger is faster but needs more memory.",
            advanced=True,
        )
        self.add(
            num(self.BATCH_SIZE, self.tr("Batch size (0 = auto)"), num.Integer, 0, False, 0),
            "Tiles per forward pass; 0 = auto: 1 on a CPU (best there), 8 on a GPU.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.BLEND, self.tr("Tile blending"), BLENDS, defaultValue=0
            ),
            "crop: keep each tile's centre (99.99 % of pixels as in one whole-image pass); "
            "ramp: cosine-weighted blend of overlaps (smoother).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.RESAMPLE, self.tr("Resample to the model's pixel size"), False
            ),
            "Resample DSMs whose pixel size differs from the model's (outputs then use the "
            "model's pixel size); otherwise such DSMs are an error.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.PROBABILITY_FORMAT,
                self.tr("Probability format"),
                PROBABILITY_FORMATS,
                defaultValue=0,
            ),
            "float32 0..1 (NaN = nodata) or uint8 percent 0..100 (255 = nodata).",
            advanced=True,
        )
        self.add(
            num(self.NUM_THREADS, self.tr("CPU threads"), num.Integer, 0, False, 0),
            "CPU threads for torch (0 = torch's default).",
            advanced=True,
        )
        self.add_options()
        self.add_mask_outputs()
        self.add(
            QgsProcessingParameterRasterDestination(
                self.PROBABILITIES,
                self.tr("Gap probabilities"),
                optional=True,
                createByDefault=False,
            ),
            "Optional GeoTIFF of gap probabilities, one band per threshold.",
        )
        self.add_polygons_output()

    def build_request(self, parameters, context, feedback):
        params, inputs, outputs = self.mask_params(parameters, context, feedback)
        model = file_path(
            self.parameterAsFile(parameters, self.MODEL, context), "model file", (".safetensors",)
        )
        params["model"] = model
        inputs.append(model)
        thresholds = thresholds_list(self.parameterAsString(parameters, self.THRESHOLDS, context))
        if thresholds:
            params["thresholds"] = thresholds
        probabilities = destination(self, parameters, self.PROBABILITIES, context)
        if probabilities:
            params["probabilities"] = probabilities
            outputs.append(probabilities)
        params.update(
            {
                "device": DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                "precision": PRECISIONS[self.parameterAsEnum(parameters, self.PRECISION, context)],
                "runtime": RUNTIMES[self.parameterAsEnum(parameters, self.RUNTIME, context)],
                "tile_size": self.parameterAsInt(parameters, self.TILE_SIZE, context),
                "batch_size": self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                "blend": BLENDS[self.parameterAsEnum(parameters, self.BLEND, context)],
                "resample": self.parameterAsBoolean(parameters, self.RESAMPLE, context),
                "probability_format": PROBABILITY_FORMATS[
                    self.parameterAsEnum(parameters, self.PROBABILITY_FORMAT, context)
                ],
                "num_threads": self.parameterAsInt(parameters, self.NUM_THREADS, context),
            }
        )
        apply_options(params, self.parameterAsString(parameters, self.OPTIONS, context))
        return EngineRequest("infer", params, inputs=inputs, outputs=outputs)

    def outputs(self, result, parameters, context, feedback):
        out = self.mask_outputs(result, parameters, context)
        extra = self.result_path(result, "probabilities", parameters, self.PROBABILITIES, context)
        if extra:
            out[self.PROBABILITIES] = extra
            style_on_load(context, extra, PROBABILITIES)
        if result.get("thresholds"):
            feedback.pushInfo(f"Thresholds: {', '.join(f'{t:g}' for t in result['thresholds'])} m")
        return out
