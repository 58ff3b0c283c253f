"""Evaluate: compare gap masks (or a model's predictions) with reference heights."""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.algorithms.params import EngineParam as P
from chm_plugin.algorithms.preprocess import add_reference, band_of, site_name
from chm_plugin.inputs import file_path, raster_path

DEFAULT_THRESHOLDS = (2, 5, 10, 15, 20)
GAP_MASK_LABEL = "gap_mask"
# Methods with their own numeric outputs, in the order MEAN_IOU/IOU_*M fall back on:
# output prefix -> (description, method label in the engine's metrics; None = the model
# file's name, as the engine labels models). A new evaluated method is one more line.
METHODS = {
    "GAP_MASK": ("Gap mask", GAP_MASK_LABEL),
    "MODEL": ("Model", None),
    "CLASSICAL": ("Classical method", "classical"),
}
SETTINGS = (
    P(
        "CLASSICAL",
        "classical",
        "Also evaluate the classical method",
        True,
        "Run the classical baselines (no model) on the DSM and report them alongside: the "
        "adaptive method ('classical' in the report) and ref21 (smoothed minimum, 21 m).",
    ),
    P(
        "THRESHOLDS",
        "thresholds",
        "Thresholds (m)",
        True,
        "Comma-separated thresholds to evaluate (empty = those of the gap mask's bands).",
    ),
    P(
        "MIN_GAP_AREA",
        "min_gap_area_m2",
        "Smallest reference gap (m²)",
        True,
        "Reference gaps smaller than this are ignored (use the dataset's value).",
    ),
    P(
        "MAX_GAP_AREA",
        "max_gap_area_m2",
        "Largest reference gap (m²)",
        True,
        "Reference gaps larger than this are ignored (use the dataset's value).",
    ),
    P("CELL_SIZE", "cell_size_m", "Gap fraction cell (m)", True),
    P("MIN_IOU", "min_iou", "Object match IoU", True),
    P(
        "FIGURES",
        "figures",
        "Draw figures",
        True,
        "Draw PNG figures into the report (needs matplotlib in the engine's Python).",
    ),
)


def iou_output(threshold: float, prefix: str = "") -> str:
    """Name of the IoU output at ``threshold`` (``IOU_5M``, ``MODEL_IOU_5M``...)."""
    return f"{prefix + '_' if prefix else ''}IOU_{threshold:g}M".replace(".", "_")


def mean_output(prefix: str = "") -> str:
    return f"{prefix + '_' if prefix else ''}MEAN_IOU"


def method_figures(table: dict | None) -> dict[str, float | None]:
    """MEAN_IOU and IOU_<t>M of one method's ``{threshold: IoU}`` table."""
    per_threshold = {str(k): v for k, v in (table or {}).items()}
    values = [v for v in per_threshold.values() if isinstance(v, (int, float))]
    out: dict[str, float | None] = {"MEAN_IOU": mean(values) if values else None}
    for t in DEFAULT_THRESHOLDS:
        out[iou_output(t)] = per_threshold.get(f"{t:g}")
    return out


class EvaluateAlgorithm(EngineAlgorithm):
    NAME = "evaluate"
    COMMAND = "evaluate"
    DISPLAY = "Evaluate gap masks"
    GROUP, GROUP_ID = "Deep learning", "deeplearning"
    ANCHOR = "evaluate-gap-masks-evaluate"
    ICON = "evaluate"
    TAGS = ("canopy", "gap", "forest", "accuracy", "iou", "f1", "metrics", "report", "validation")
    SHORT = "Accuracy of gap masks against reference heights, with a report."
    HELP = (
        "Compares gap masks with reference heights (a CHM, or a DTM with the DSM) and writes a "
        "report folder: metrics.json, metrics.csv, report.md and report.html with pixel IoU, "
        "F1, precision and recall per threshold, object matching, the gap-size distribution, "
        "gap fraction per cell and figures.\n"
        "Evaluate a gap mask from 'Predict gap masks' or 'Classical gap masks', give a model "
        "file and the DSM to predict and evaluate in one step, and tick 'Also evaluate the "
        "classical method' to compare. Each method has its own numeric outputs: "
        "GAP_MASK_MEAN_IOU and GAP_MASK_IOU_5M..., MODEL_..., CLASSICAL_...; MEAN_IOU and "
        "IOU_2M...IOU_20M repeat those of the gap mask if one is given, else the model's, "
        "else the classical method's."
    )
    PREDICTION, MODEL, DSM = "PREDICTION", "MODEL", "DSM"
    REFERENCE, REFERENCE_KIND, SITE_NAME = "REFERENCE", "REFERENCE_KIND", "SITE_NAME"
    OUTPUT = "OUTPUT"

    def init_parameters(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.PREDICTION, self.tr("Gap mask"), optional=True),
            "Gap mask from 'Predict gap masks' or 'Classical gap masks' (one band per "
            "threshold). Optional when a model file is given.",
            key="sites[].predictions",
        )
        self.add(
            QgsProcessingParameterFile(
                self.MODEL, self.tr("Model file"), extension="safetensors", optional=True
            ),
            "A .safetensors model from 'Train gap model': run on the DSM and evaluated too.",
            key="models",
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.DSM, self.tr("DSM"), optional=True),
            "The site's DSM: needed with a DTM reference, a model file or the classical method.",
            key="sites[].dsm",
        )
        add_reference(self, "Reference CHM or DTM (see 'Reference is a') covering the gap mask.")
        ref = "'Reference heights' (REFERENCE)"
        self._key_names.update({"sites[].reference_chm": ref, "sites[].reference_dtm": ref})
        for spec in SETTINGS:
            self.add_engine(spec)
        self.add(
            QgsProcessingParameterString(self.SITE_NAME, self.tr("Site name"), "", optional=True),
            "Name of the site in the report (default: the reference layer's name).",
            advanced=True,
            key="sites[].name",
        )
        self.add_options()
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Report folder")),
            "Folder receiving metrics.json, metrics.csv, report.md, report.html, figures/.",
            key="output",
        )
        self.addOutput(QgsProcessingOutputFile("REPORT", self.tr("HTML report")))
        self.addOutput(QgsProcessingOutputFile("METRICS", self.tr("Metrics (JSON)")))
        for prefix, description in (("", ""), *((p, d) for p, (d, _) in METHODS.items())):
            who = f"{description}: " if description else ""
            self.addOutput(QgsProcessingOutputNumber(mean_output(prefix), f"{who}Mean IoU"))
            for t in DEFAULT_THRESHOLDS:
                self.addOutput(
                    QgsProcessingOutputNumber(iou_output(t, prefix), f"{who}IoU at {t} m")
                )

    def site(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        kind: str,
    ) -> tuple[dict[str, Any], list[str]]:
        """The evaluation site (reference, gap mask, DSM) and its input paths."""
        bands = [band_of(self, parameters, n, context) for n in ("DSM_BAND", "REFERENCE_BAND")]
        ref_layer = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        ref = raster_path(ref_layer, f"reference {kind.upper()}", context, feedback, band=bands[1])
        name = self.parameterAsString(parameters, self.SITE_NAME, context).strip()
        site = {"name": name or site_name(ref_layer, "site"), f"reference_{kind}": ref}
        inputs = [ref]
        pred_layer = self.parameterAsRasterLayer(parameters, self.PREDICTION, context)
        if pred_layer is not None:
            pred = raster_path(pred_layer, "gap mask", context, feedback)
            site["predictions"] = {GAP_MASK_LABEL: pred}
            inputs.append(pred)
        dsm_layer = self.parameterAsRasterLayer(parameters, self.DSM, context)
        if dsm_layer is not None:
            site["dsm"] = raster_path(dsm_layer, "DSM", context, feedback, band=bands[0])
            inputs.append(site["dsm"])
        return site, inputs

    def build_request(self, parameters, context, feedback):
        kind = self.parameterAsEnumString(parameters, self.REFERENCE_KIND, context)
        site, inputs = self.site(parameters, context, feedback, kind)
        params = self.engine_params(parameters, context)
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if "predictions" not in site and not model and not params.get("classical"):
            raise QgsProcessingException(
                "Nothing to evaluate: give a gap mask, or a model file (with the DSM), or tick "
                "'Also evaluate the classical method'."
            )
        if (model or params.get("classical") or kind == "dtm") and "dsm" not in site:
            raise QgsProcessingException(
                "The DSM is needed to run a model or the classical method, or with a DTM "
                "reference: set the 'DSM' parameter."
            )
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        params.update(sites=[site], output=output, models=[])
        if model:
            params["models"] = [file_path(model, "model file", (".safetensors",))]
            taken = {label for _, label in METHODS.values()} | {"ref21"}  # ref21: a baseline
            if Path(model).stem in taken:
                raise QgsProcessingException(
                    f"The report names methods after their files, and '{Path(model).stem}' is "
                    "taken by another method: rename the model file (and its .json)."
                )
            inputs.append(params["models"][0])
        params = self.with_options(params, parameters, context)
        return self.request(params, inputs, [output])

    def outputs(self, result, parameters, context, feedback):
        ious = result.get("iou") or {}
        model = self.parameterAsFile(parameters, self.MODEL, context)
        model_label = Path(model).stem if model else None
        labels = {p: model_label if label is None else label for p, (_, label) in METHODS.items()}
        out = {
            "OUTPUT": result.get("output"),
            "REPORT": result.get("html") or result.get("report"),
            "METRICS": result.get("metrics"),
        }
        primary = None
        for prefix, label in labels.items():
            figures = method_figures(ious.get(label) if label else None)
            out.update({f"{prefix}_{k}": v for k, v in figures.items()})
            if primary is None and label in ious:
                primary = figures
        out.update(primary or method_figures(None))
        for m, table in ious.items():
            shown = ", ".join(f"{k} m: {v:.3f}" for k, v in table.items() if v is not None)
            feedback.pushInfo(f"IoU of {m}: {shown}")
        return out
