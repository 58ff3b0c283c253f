"""Synthetic scene: a seeded forest DSM/DTM/CHM with gaps of known size (demos, tests)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterCrs,
    QgsProcessingParameterFolderDestination,
)

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.algorithms.params import EngineParam as P
from chm_plugin.styles import CHM, StylePostProcessor

SCENE = (
    P("SIZE", "size", "Scene size (pixels)"),
    P("PIXEL_SIZE", "pixel_size", "Pixel size (m)"),
    P("SEED", "seed", "Random seed"),
    P("GAPS", "gaps", "Number of gaps"),
    P("RELIEF", "relief_m", "Terrain relief (m)", True),
    P("TREE_SPACING", "tree_spacing_m", "Tree spacing (m)", True),
    P("CROWN_HEIGHT_MIN", "crown_height_min", "Lowest tree (m)", True),
    P("CROWN_HEIGHT_MAX", "crown_height_max", "Highest tree (m)", True),
    P("GAP_RADIUS_MIN", "gap_radius_min_m", "Smallest gap semi-axis (m)", True),
    P("GAP_RADIUS_MAX", "gap_radius_max_m", "Largest gap semi-axis (m)", True),
    P("REGROWTH_MAX", "regrowth_max_m", "Highest regrowth in gaps (m)", True),
    P("HOLES", "holes", "Nodata holes", True),
)


class SynthAlgorithm(EngineAlgorithm):
    NAME = "synth"
    COMMAND = "synth"
    DISPLAY = "Synthetic forest scene"
    GROUP, GROUP_ID = "Tools", "tools"
    ANCHOR = "synthetic-forest-scene-synth"
    ICON = "synth"
    TAGS = ("canopy", "gap", "forest", "synthetic", "test data", "dsm", "dtm", "chm", "demo")
    SHORT = "A seeded synthetic forest DSM, DTM and CHM with gaps of known size."
    HELP = (
        "Writes dsm.tif, dtm.tif and chm.tif (GeoTIFF, metres) and scene.json describing the "
        "gaps that were cut. Use it to try the other algorithms without data, in demos and in "
        "tests: the same seed always gives the same scene."
    )
    OUTPUT, CRS = "OUTPUT", "CRS"

    def init_parameters(self) -> None:
        for spec in SCENE:
            self.add_engine(spec)
        self.add(
            QgsProcessingParameterCrs(self.CRS, self.tr("Projected CRS"), "EPSG:32618", True),
            "Projected coordinate reference system (metres) of the scene (default EPSG:32618).",
            advanced=True,
            key="crs",
        )
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Output folder")),
            "Folder receiving dsm.tif, dtm.tif, chm.tif and scene.json (a scene already there "
            "is replaced).",
            key="output",
        )
        for key, label in (("DSM", "DSM"), ("DTM", "DTM"), ("CHM", "CHM")):
            self.addOutput(QgsProcessingOutputRasterLayer(key, self.tr(label)))
        self.addOutput(QgsProcessingOutputFile("SCENE", self.tr("Scene description")))

    def build_request(self, parameters, context, feedback):
        params = self.engine_params(parameters, context)
        crs = self.parameterAsCrs(parameters, self.CRS, context)
        if crs.isValid():
            params["crs"] = crs.authid() or crs.toWkt()
            if crs.isGeographic():
                params["crs"] = "EPSG:32618"
                feedback.pushWarning("A geographic CRS cannot hold metres: using EPSG:32618.")
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        params["output"] = output
        return self.request(params, outputs=[output])

    def outputs(self, result, parameters, context, feedback):
        out = {
            "OUTPUT": result.get("output"),
            "DSM": result.get("dsm"),
            "DTM": result.get("dtm"),
            "CHM": result.get("chm"),
            "SCENE": result.get("scene"),
        }
        project = context.project()
        if project is not None:
            for key in ("DSM", "CHM"):
                if out[key]:
                    details = QgsProcessingContext.LayerDetails(f"synthetic {key}", project, key)
                    if key == "CHM":
                        details.setPostProcessor(StylePostProcessor.create(CHM))
                    context.addLayerToLoadOnCompletion(out[key], details)
        return out
