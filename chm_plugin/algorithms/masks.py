"""Shared parts of the gap-mask algorithms (infer, classical): DSM, outputs, post-processing."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.algorithms.params import EngineParam
from chm_plugin.inputs import raster_path
from chm_plugin.outputs import OutputTarget, raster_target, vector_target
from chm_plugin.styles import GAP_MASK, POLYGONS, style_on_load

MASK_FORMATS = (
    "Any raster format QGIS writes (by extension; GeoTIFF is written directly, others are "
    "converted from it)."
)


def destination(
    alg: EngineAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    kind: str = "raster",
) -> OutputTarget | None:
    """The output ``name`` as asked for (None when not requested)."""
    value = alg.parameterAsOutputLayer(parameters, name, context)
    if not value:
        return None
    return raster_target(value) if kind == "raster" else vector_target(value)


class GapMaskAlgorithm(EngineAlgorithm):
    """Adds DSM, BAND, OUTPUT, POLYGONS and the mask post-processing parameters."""

    DSM, BAND, OUTPUT, POLYGONS = "DSM", "BAND", "OUTPUT", "POLYGONS"
    MIN_GAP_AREA, FILL_HOLES, MAX_HOLE_AREA = "MIN_GAP_AREA", "FILL_HOLES", "MAX_HOLE_AREA"

    def add_dsm(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.DSM, self.tr("DSM")),
            "Digital surface model (heights in metres, projected CRS). Layers that are not "
            "GeoTIFF files are exported to a temporary GeoTIFF first.",
            key="dsm",
        )
        self.add_engine(
            EngineParam(
                self.BAND,
                "band",
                self.tr("DSM band"),
                help="Band of the DSM holding the heights (empty: the DSM must have one band).",
                band_of=self.DSM,
            )
        )

    def add_mask_options(self) -> None:
        self.add_engine(
            EngineParam(
                self.MIN_GAP_AREA,
                "min_gap_area_m2",
                self.tr("Smallest gap (m²)"),
                help="Remove gaps (8-connected) smaller than this area in m² (0 = keep all).",
            )
        )
        self.add_engine(
            EngineParam(self.FILL_HOLES, "fill_holes", self.tr("Fill holes in gaps"), True)
        )
        self.add_engine(
            EngineParam(
                self.MAX_HOLE_AREA,
                "max_hole_area_m2",
                self.tr("Largest hole to fill (m²)"),
                True,
                "With 'Fill holes in gaps': only fill holes up to this area (empty = any size).",
            )
        )

    def add_mask_outputs(self) -> None:
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Gap mask")),
            "uint8, one band per threshold (band description 'gap <= 5 m'): 1 = gap, 0 = "
            "canopy, 255 = nodata; same grid and CRS as the DSM. Loaded with a paletted style "
            f"(band 1; change the band in the layer properties). {MASK_FORMATS}",
            key="output",
        )

    def add_polygons_output(self) -> None:
        self.add(
            QgsProcessingParameterVectorDestination(
                self.POLYGONS,
                self.tr("Gap polygons"),
                QgsProcessing.TypeVectorPolygon,
                optional=True,
                createByDefault=False,
            ),
            "Optional gap polygons with threshold_m, area_m2 and perimeter_m (one feature per "
            "gap and threshold), in any vector format QGIS writes (GeoPackage directly, others "
            "converted).",
            key="polygons",
        )

    def mask_params(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> tuple[dict[str, Any], list[str], dict[str, OutputTarget]]:
        """(params, inputs, output targets) shared by infer and classical."""
        dsm = raster_path(
            self.parameterAsRasterLayer(parameters, self.DSM, context), "DSM", context, feedback
        )
        params = self.engine_params(parameters, context)
        params["dsm"] = dsm
        output = destination(self, parameters, self.OUTPUT, context)
        if output is None:  # a required destination: Processing always names one
            raise QgsProcessingException("Choose a file for 'Gap mask' (OUTPUT).")
        targets = {self.OUTPUT: output}
        params["output"] = output.engine_path
        polygons = destination(self, parameters, self.POLYGONS, context, "vector")
        if polygons is not None:
            params["polygons"] = polygons.engine_path
            targets[self.POLYGONS] = polygons
        return params, [dsm], targets

    def mask_outputs(self, result: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """The OUTPUT and POLYGONS outputs of ``result``, styled when they load."""
        out = {self.OUTPUT: result.get("output")}
        style_on_load(context, out[self.OUTPUT], GAP_MASK)
        if result.get("polygons"):
            out[self.POLYGONS] = result["polygons"]
            style_on_load(context, out[self.POLYGONS], POLYGONS)
        return out


def engine_outputs(targets: dict[str, OutputTarget]) -> list[str]:
    """The files the engine writes for ``targets``."""
    return [t.engine_path for t in targets.values() if t is not None]
