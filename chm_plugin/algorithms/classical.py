"""Classical gap masks without a model: DSM minus a ground estimate (adaptive, or ref21)."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination

from chm_plugin.algorithms.masks import GapMaskAlgorithm, destination, engine_outputs
from chm_plugin.algorithms.params import EngineParam as P
from chm_plugin.styles import CHM, style_on_load

# The method's settings, in dialog order. A new engine option of the classical method is one
# more line here (key = the ClassicalConfig field).
METHOD = (
    P(
        "THRESHOLDS",
        "thresholds",
        "Thresholds (m)",
        help="Comma-separated height thresholds in metres: gap where height <= threshold.",
    ),
    P(
        "METHOD",
        "method",
        "Method",
        help="adaptive = small and large slope-corrected ground windows blended by forest "
        "openness (parameters chosen on the project's lidar sites; 'More engine settings' "
        "changes them); smoothed_minimum = the DSM's local minimum over 'Local minimum window "
        "(m)', smoothed over 'Smoothing (m)' (21 m and 21 m make the ref21 baseline).",
    ),
    P(
        "WINDOW",
        "window_m",
        "Local minimum window (m)",
        help="smoothed_minimum only: side in metres of the local-minimum window (wider than "
        "the largest gap).",
    ),
    P(
        "SMOOTHING",
        "smoothing_m",
        "Smoothing (m)",
        True,
        "smoothed_minimum only: side in metres of the mean filter smoothing the local minimum "
        "(0 = none).",
    ),
)


class ClassicalAlgorithm(GapMaskAlgorithm):
    NAME = "classical"
    COMMAND = "classical"
    DISPLAY = "Classical gap masks (no model)"
    GROUP, GROUP_ID = "Gap masks", "gapmasks"
    ANCHOR = "classical-gap-masks-classical"
    ICON = "classical"
    TAGS = ("canopy", "gap", "forest", "dsm", "chm", "local minimum", "baseline", "mask")
    SHORT = "Gap masks from a DSM without a trained model, from a ground estimate."
    HELP = (
        "Estimates the ground under the canopy from local minima of the DSM and marks a pixel "
        "as gap at threshold t where the DSM is at most t above that ground. The adaptive "
        "method (default) blends a small and a large slope-corrected window by how open the "
        "forest is; smoothed_minimum is the plain smoothed local minimum. Quick, needs neither "
        "a GPU nor a model, and is the baseline that 'Evaluate gap masks' reports next to a "
        "model.\n"
        "Writes the same gap mask raster as 'Predict gap masks' (one band per threshold) and, "
        "on request, the heights and gap polygons."
    )
    HEIGHTS = "HEIGHTS"

    def init_parameters(self) -> None:
        self.add_dsm()
        for spec in METHOD:
            self.add_engine(spec)
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
            "Optional float32 raster of the heights above the ground estimate that are "
            "thresholded (adaptive: one band per threshold), in any raster format QGIS writes.",
            key="heights",
        )
        self.add_polygons_output()

    def build_request(self, parameters, context, feedback):
        params, inputs, targets = self.mask_params(parameters, context, feedback)
        heights = destination(self, parameters, self.HEIGHTS, context)
        if heights is not None:
            params["heights"] = heights.engine_path
            targets[self.HEIGHTS] = heights
        params = self.with_options(params, parameters, context)
        return self.request(params, inputs, engine_outputs(targets), targets)

    def outputs(self, result, parameters, context, feedback):
        out = self.mask_outputs(result, context)
        if result.get("heights"):
            out[self.HEIGHTS] = result["heights"]
            style_on_load(context, out[self.HEIGHTS], CHM)
        return out
