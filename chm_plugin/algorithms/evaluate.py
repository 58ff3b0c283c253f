"""Evaluate: compare gap masks (or a model's predictions) with reference heights."""

from __future__ import annotations

from statistics import mean

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import (
    EngineAlgorithm,
    apply_options,
    optional_number,
    thresholds_list,
)
from chm_plugin.algorithms.preprocess import REFERENCE_KINDS, site_name
from chm_plugin.backends import EngineRequest
from chm_plugin.inputs import file_path, raster_path

DEFAULT_THRESHOLDS = (2, 5, 10, 15, 20)
PREDICTION_LABEL = "prediction"


def iou_output(threshold: float) -> str:
    return f"IOU_{threshold:g}M".replace(".", "_")


class EvaluateAlgorithm(EngineAlgorithm):
    NAME = "evaluate"
    DISPLAY = "Evaluate gap masks"
    GROUP = "Deep learning"
    GROUP_ID = "deeplearning"
    HELP = (
        "Compares gap masks with reference heights (a CHM, or a DTM with the DSM) and writes a "
        "report folder: metrics.json, metrics.csv, report.md and report.html (pixel IoU, F1, "
        "precision, recall per threshold, object matching, gap-size distribution, gap fraction "
        "per cell, figures). Evaluate a gap mask from 'Predict gap masks', or give a model file "
        "and the DSM to predict and evaluate in one step; the classical method can be added "
        "for comparison. Outputs the mean IoU and the IoU at each default threshold of the "
        "first method (the gap mask if given, else the model)."
    )
    PREDICTION, MODEL, DSM = "PREDICTION", "MODEL", "DSM"
    REFERENCE, REFERENCE_KIND, SITE_NAME = "REFERENCE", "REFERENCE_KIND", "SITE_NAME"
    CLASSICAL, THRESHOLDS = "CLASSICAL", "THRESHOLDS"
    MIN_GAP_AREA, MAX_GAP_AREA, CELL_SIZE, MIN_IOU = (
        "MIN_GAP_AREA",
        "MAX_GAP_AREA",
        "CELL_SIZE",
        "MIN_IOU",
    )
    FIGURES, OPTIONS, OUTPUT = "FIGURES", "OPTIONS", "OUTPUT"

    def init_parameters(self) -> None:
        num = QgsProcessingParameterNumber
        self.add(
            QgsProcessingParameterRasterLayer(self.PREDICTION, self.tr("Gap mask"), optional=True),
            "Gap mask GeoTIFF from 'Predict gap masks' or 'Classical gap masks' (one band "
            "per threshold). Optional when a model file is given.",
        )
        self.add(
            QgsProcessingParameterFile(
                self.MODEL, self.tr("Model file"), extension="safetensors", optional=True
            ),
            "A .safetensors model from 'Train gap model': run on the DSM and evaluated too.",
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.DSM, self.tr("DSM"), optional=True),
            "The site's DSM: needed with a DTM reference, a model file or the classical method.",
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Reference heights")),
            "Reference CHM or DTM (see 'Reference is a') covering the gap mask.",
        )
        self.add(
            QgsProcessingParameterEnum(
                self.REFERENCE_KIND, self.tr("Reference is a"), REFERENCE_KINDS, defaultValue=0
            ),
            "Whether the reference raster is a canopy height model or a terrain model.",
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.CLASSICAL, self.tr("Also evaluate the classical method"), False
            ),
            "Run the classical method (no model) on the DSM and report it alongside.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterString(
                self.THRESHOLDS, self.tr("Thresholds (m)"), "", optional=True
            ),
            "Comma-separated thresholds to evaluate (empty = those of the gap mask's bands).",
            advanced=True,
        )
        self.add(
            num(
                self.MIN_GAP_AREA, self.tr("Smallest reference gap (m²)"), num.Double, None, True, 0
            ),
            "Reference gaps smaller than this are ignored (use the dataset's value).",
            advanced=True,
        )
        self.add(
            num(
                self.MAX_GAP_AREA, self.tr("Largest reference gap (m²)"), num.Double, None, True, 0
            ),
            "Reference gaps larger than this are ignored (use the dataset's value).",
            advanced=True,
        )
        self.add(
            num(self.CELL_SIZE, self.tr("Gap fraction cell (m)"), num.Double, 20.0, False, 0.1),
            "Cell size for the per-cell gap fraction comparison (R², RMSE, bias).",
            advanced=True,
        )
        self.add(
            num(self.MIN_IOU, self.tr("Object match IoU"), num.Double, 0.5, False, 0.5, 1.0),
            "IoU a predicted and a reference gap need to count as a match.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(self.FIGURES, self.tr("Draw figures"), True),
            "Draw PNG figures into the report (needs matplotlib in the engine's Python).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterString(self.SITE_NAME, self.tr("Site name"), "", optional=True),
            "Name of the site in the report (default: the reference layer's name).",
            advanced=True,
        )
        self.add_options()
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Report folder")),
            "Folder receiving metrics.json, metrics.csv, report.md, report.html, figures/.",
        )
        self.add_output_help(
            QgsProcessingOutputFile("REPORT", self.tr("HTML report")),
            "report.html in the report folder.",
        )
        self.add_output_help(
            QgsProcessingOutputFile("METRICS", self.tr("Metrics (JSON)")),
            "metrics.json in the report folder.",
        )
        self.add_output_help(
            QgsProcessingOutputNumber("MEAN_IOU", self.tr("Mean IoU")),
            "Pixel IoU averaged over the evaluated thresholds.",
        )
        for t in DEFAULT_THRESHOLDS:
            self.add_output_help(
                QgsProcessingOutputNumber(iou_output(t), self.tr(f"IoU at {t} m")),
                f"Pixel IoU of gaps at the {t} m threshold (empty if not evaluated).",
            )

    def build_request(self, parameters, context, feedback):
        kind = (
            "chm" if self.parameterAsEnum(parameters, self.REFERENCE_KIND, context) == 0 else "dtm"
        )
        ref_layer = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        ref = raster_path(ref_layer, f"reference {kind.upper()}", context, feedback)
        inputs = [ref]
        site = {
            "name": self.parameterAsString(parameters, self.SITE_NAME, context).strip()
            or site_name(ref_layer, "site")
        }
        site["reference_chm" if kind == "chm" else "reference_dtm"] = ref
        pred_layer = self.parameterAsRasterLayer(parameters, self.PREDICTION, context)
        if pred_layer is not None:
            pred = raster_path(pred_layer, "gap mask", context, feedback)
            site["predictions"] = {PREDICTION_LABEL: pred}
            inputs.append(pred)
        dsm_layer = self.parameterAsRasterLayer(parameters, self.DSM, context)
        if dsm_layer is not None:
            site["dsm"] = raster_path(dsm_layer, "DSM", context, feedback)
            inputs.append(site["dsm"])
        model = self.parameterAsFile(parameters, self.MODEL, context)
        classical = self.parameterAsBoolean(parameters, self.CLASSICAL, context)
        if pred_layer is None and not model and not classical:
            raise QgsProcessingException(
                "Nothing to evaluate: give a gap mask, or a model file (with the DSM), or tick "
                "'Also evaluate the classical method'."
            )
        if (model or classical or kind == "dtm") and dsm_layer is None:
            raise QgsProcessingException(
                "The DSM is needed to run a model or the classical method, or with a DTM "
                "reference: set the 'DSM' parameter."
            )
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        params = {
            "sites": [site],
            "output": output,
            "models": [file_path(model, "model file", (".safetensors",))] if model else [],
            "classical": classical,
            "min_gap_area_m2": optional_number(self, parameters, self.MIN_GAP_AREA, context),
            "max_gap_area_m2": optional_number(self, parameters, self.MAX_GAP_AREA, context),
            "cell_size_m": self.parameterAsDouble(parameters, self.CELL_SIZE, context),
            "min_iou": self.parameterAsDouble(parameters, self.MIN_IOU, context),
            "figures": self.parameterAsBoolean(parameters, self.FIGURES, context),
        }
        if model:
            inputs.append(model)
        thresholds = thresholds_list(self.parameterAsString(parameters, self.THRESHOLDS, context))
        if thresholds:
            params["thresholds"] = thresholds
        apply_options(params, self.parameterAsString(parameters, self.OPTIONS, context))
        return EngineRequest("evaluate", params, inputs=inputs, outputs=[output])

    def outputs(self, result, parameters, context, feedback):
        ious = result.get("iou") or {}
        method = PREDICTION_LABEL if PREDICTION_LABEL in ious else next(iter(ious), None)
        per_threshold = {str(k): v for k, v in (ious.get(method) or {}).items()}
        values = [v for v in per_threshold.values() if isinstance(v, (int, float))]
        out = {
            "OUTPUT": result.get("output"),
            "REPORT": result.get("html") or result.get("report"),
            "METRICS": result.get("metrics"),
            "MEAN_IOU": mean(values) if values else None,
        }
        for t in DEFAULT_THRESHOLDS:
            out[iou_output(t)] = per_threshold.get(f"{t:g}")
        for m, table in ious.items():
            shown = ", ".join(f"{k} m: {v:.3f}" for k, v in table.items() if v is not None)
            feedback.pushInfo(f"IoU of {m}: {shown}")
        return out
