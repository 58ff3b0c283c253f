"""Synthetic scene: a seeded forest DSM/DTM/CHM with gaps of known size (demos, tests)."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterCrs,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.backends import EngineRequest
from chm_plugin.styles import CHM, StylePostProcessor

INT, DOUBLE = QgsProcessingParameterNumber.Integer, QgsProcessingParameterNumber.Double

# (parameter, engine key, label, type, default, min, help, advanced)
NUMBERS = [
    (
        "SIZE",
        "size",
        "Scene size (pixels)",
        INT,
        256,
        32,
        "Width and height of the scene in pixels.",
        False,
    ),
    (
        "PIXEL_SIZE",
        "pixel_size",
        "Pixel size (m)",
        DOUBLE,
        1.0,
        0.05,
        "Pixel size in metres.",
        False,
    ),
    ("SEED", "seed", "Random seed", INT, 0, 0, "Same seed, same scene.", False),
    ("GAPS", "gaps", "Number of gaps", INT, 12, 0, "How many canopy gaps to cut.", False),
    (
        "RELIEF",
        "relief_m",
        "Terrain relief (m)",
        DOUBLE,
        30.0,
        0.0,
        "Terrain relief scale in metres.",
        True,
    ),
    (
        "TREE_SPACING",
        "tree_spacing_m",
        "Tree spacing (m)",
        DOUBLE,
        6.0,
        0.5,
        "Mean distance between trees in metres.",
        True,
    ),
    (
        "CROWN_HEIGHT_MIN",
        "crown_height_min",
        "Lowest tree (m)",
        DOUBLE,
        10.0,
        0.0,
        "Lowest tree height in metres.",
        True,
    ),
    (
        "CROWN_HEIGHT_MAX",
        "crown_height_max",
        "Highest tree (m)",
        DOUBLE,
        35.0,
        0.0,
        "Highest tree height in metres.",
        True,
    ),
    (
        "GAP_RADIUS_MIN",
        "gap_radius_min_m",
        "Smallest gap semi-axis (m)",
        DOUBLE,
        3.0,
        0.1,
        "Smallest gap semi-axis in metres.",
        True,
    ),
    (
        "GAP_RADIUS_MAX",
        "gap_radius_max_m",
        "Largest gap semi-axis (m)",
        DOUBLE,
        20.0,
        0.1,
        "Largest gap semi-axis in metres.",
        True,
    ),
    (
        "REGROWTH_MAX",
        "regrowth_max_m",
        "Highest regrowth in gaps (m)",
        DOUBLE,
        8.0,
        0.0,
        "Highest regrowth inside gaps in metres.",
        True,
    ),
    (
        "HOLES",
        "holes",
        "Nodata holes",
        INT,
        0,
        0,
        "Number of nodata holes (areas without lidar returns).",
        True,
    ),
]


class SynthAlgorithm(EngineAlgorithm):
    NAME = "synth"
    DISPLAY = "Synthetic forest scene"
    GROUP = "Tools"
    GROUP_ID = "tools"
    HELP = (
        "Writes a seeded synthetic forest scene: a DSM, DTM and CHM (GeoTIFF, metres) with "
        "gaps of known size and a scene.json describing them. Use it to try the other "
        "algorithms without data, or in demos and tests. The same seed always gives the same "
        "scene."
    )
    OUTPUT = "OUTPUT"
    CRS = "CRS"

    def init_parameters(self) -> None:
        for name, _key, label, kind, default, minimum, help_text, advanced in NUMBERS:
            self.add(
                QgsProcessingParameterNumber(name, self.tr(label), kind, default, False, minimum),
                help_text,
                advanced,
            )
        self.add(
            QgsProcessingParameterCrs(self.CRS, self.tr("Projected CRS"), "EPSG:32618", True),
            "Projected coordinate reference system (metres) of the scene (default EPSG:32618).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Output folder")),
            "Folder receiving dsm.tif, dtm.tif, chm.tif and scene.json (replaced if it exists).",
        )
        for key, label in (("DSM", "DSM"), ("DTM", "DTM"), ("CHM", "CHM")):
            self.add_output_help(
                QgsProcessingOutputRasterLayer(key, self.tr(label)), f"The scene's {label}."
            )
        self.add_output_help(
            QgsProcessingOutputFile("SCENE", self.tr("Scene description")),
            "scene.json: CRS, pixel size and the gaps that were cut.",
        )

    def build_request(self, parameters, context, feedback):
        params = {}
        for name, key, _label, kind, *_ in NUMBERS:
            if kind == INT:
                params[key] = self.parameterAsInt(parameters, name, context)
            else:
                params[key] = self.parameterAsDouble(parameters, name, context)
        crs = self.parameterAsCrs(parameters, self.CRS, context)
        if crs.isValid():
            params["crs"] = crs.authid() or crs.toWkt()
            if crs.isGeographic():
                params["crs"] = QgsCoordinateReferenceSystem("EPSG:32618").authid()
                feedback.pushWarning("A geographic CRS cannot hold metres: using EPSG:32618.")
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        params["output"] = output
        return EngineRequest("synth", params, outputs=[output])

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
