"""Classical gap masks without a model: DSM minus a smoothed local minimum, thresholded."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import apply_options, thresholds_list
from chm_plugin.algorithms.masks import GapMaskAlgorithm, destination
from chm_plugin.backends import EngineRequest
from chm_plugin.styles import CHM, style_on_load


class ClassicalAlgorithm(GapMaskAlgorithm):
    NAME = "classical"
    DISPLAY = "Classical gap masks (no model)"
    GROUP = "Gap masks"
    GROUP_ID = "gapmasks"
    HELP = (
        "Maps canopy gaps without a trained model: heights above ground are approximated by "
        "the DSM minus its smoothed local minimum (a window wider than the largest gap), and a "
        "pixel is gap at threshold t where that height is <= t. Quick, needs no GPU, and serves "
        "as a baseline; a trained model is usually more accurate on rough terrain. Writes the "
        "same gap mask GeoTIFF as 'Predict gap masks' (one band per threshold), optionally the "
        "heights and gap polygons."
    )
    THRESHOLDS, WINDOW, SMOOTHING, HEIGHTS, OPTIONS = (
        "THRESHOLDS",
        "WINDOW",
        "SMOOTHING",
        "HEIGHTS",
        "OPTIONS",
    )

    def init_parameters(self) -> None:
        num = QgsProcessingParameterNumber
        self.add_dsm()
        self.add(
            QgsProcessingParameterString(
                self.THRESHOLDS, self.tr("Thresholds (m)"), "2,5,10,15,20"
            ),
            "Comma-separated height thresholds in metres: gap where height <= threshold.",
        )
        self.add(
            num(self.WINDOW, self.tr("Local minimum window (m)"), num.Double, 30.0, False, 0.1),
            "Side in metres of the local-minimum window (wider than the largest gap).",
        )
        self.add(
            num(self.SMOOTHING, self.tr("Smoothing (m)"), num.Double, 10.0, False, 0.0),
            "Side in metres of the mean filter smoothing the local minimum (0 = none).",
            advanced=True,
        )
        self.add_mask_options()
        self.add_options()
        self.add_mask_outputs()
        self.add(
            QgsProcessingParameterRasterDestination(
                self.HEIGHTS,
                self.tr("Heights above local minimum"),
                optional=True,
                createByDefault=False,
            ),
            "Optional float32 GeoTIFF of the heights that are thresholded.",
        )
        self.add_polygons_output()

    def build_request(self, parameters, context, feedback):
        params, inputs, outputs = self.mask_params(parameters, context, feedback)
        params["thresholds"] = thresholds_list(
            self.parameterAsString(parameters, self.THRESHOLDS, context)
        )
        params["window_m"] = self.parameterAsDouble(parameters, self.WINDOW, context)
        params["smoothing_m"] = self.parameterAsDouble(parameters, self.SMOOTHING, context)
        heights = destination(self, parameters, self.HEIGHTS, context)
        if heights:
            params["heights"] = heights
            outputs.append(heights)
        apply_options(params, self.parameterAsString(parameters, self.OPTIONS, context))
        return EngineRequest("classical", params, inputs=inputs, outputs=outputs)

    def outputs(self, result, parameters, context, feedback):
        out = self.mask_outputs(result, parameters, context)
        extra = self.result_path(result, "heights", parameters, self.HEIGHTS, context)
        if extra:
            out[self.HEIGHTS] = extra
            style_on_load(context, extra, CHM)
        return out
