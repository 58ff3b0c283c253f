"""Shared parameters of the algorithms that write gap masks (infer, classical)."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from chm_plugin.algorithms.base import EngineAlgorithm, optional_number
from chm_plugin.inputs import raster_path
from chm_plugin.styles import GAP_MASK, POLYGONS, style_on_load


def destination(alg, parameters, name, context) -> str | None:
    """Path of an (optional) output: None when not requested; GDAL/OGR suffixes removed."""
    value = alg.parameterAsOutputLayer(parameters, name, context)
    if not value:
        return None
    return value.split("|", 1)[0]


class GapMaskAlgorithm(EngineAlgorithm):
    """Adds DSM, OUTPUT, POLYGONS and the mask post-processing parameters."""

    DSM, OUTPUT, POLYGONS = "DSM", "OUTPUT", "POLYGONS"
    MIN_GAP_AREA, FILL_HOLES, MAX_HOLE_AREA = "MIN_GAP_AREA", "FILL_HOLES", "MAX_HOLE_AREA"

    def add_dsm(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.DSM, self.tr("DSM")),
            "Digital surface model (one band, heights in metres, projected CRS). Layers that "
            "are not GeoTIFF files are exported to a temporary GeoTIFF first.",
        )

    def add_mask_options(self) -> None:
        num = QgsProcessingParameterNumber
        self.add(
            num(self.MIN_GAP_AREA, self.tr("Smallest gap (m²)"), num.Double, 0.0, False, 0),
            "Remove gaps (8-connected) smaller than this area in m² (0 = keep all).",
        )
        self.add(
            QgsProcessingParameterBoolean(self.FILL_HOLES, self.tr("Fill holes in gaps"), False),
            "Fill canopy holes enclosed by a gap (done before the area filter).",
            advanced=True,
        )
        self.add(
            num(
                self.MAX_HOLE_AREA, self.tr("Largest hole to fill (m²)"), num.Double, None, True, 0
            ),
            "With 'Fill holes': only fill holes up to this area (empty = any size).",
            advanced=True,
        )

    def add_mask_outputs(self) -> None:
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Gap mask")),
            "GeoTIFF, uint8, one band per threshold (band description 'gap <= 5 m'): "
            "1 = gap, 0 = canopy, 255 = nodata; same grid and CRS as the DSM. Loaded with a "
            "paletted style (band 1; change the band in the layer properties).",
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
            "Optional GeoPackage of gap polygons with threshold_m, area_m2 and perimeter_m "
            "(one feature per gap and threshold).",
        )

    def mask_params(self, parameters, context, feedback) -> tuple[dict, list[str], list[str]]:
        """(params, inputs, outputs) shared by infer and classical."""
        dsm = raster_path(
            self.parameterAsRasterLayer(parameters, self.DSM, context), "DSM", context, feedback
        )
        output = destination(self, parameters, self.OUTPUT, context)
        params = {
            "dsm": dsm,
            "output": output,
            "min_gap_area_m2": self.parameterAsDouble(parameters, self.MIN_GAP_AREA, context),
            "fill_holes": self.parameterAsBoolean(parameters, self.FILL_HOLES, context),
            "max_hole_area_m2": optional_number(self, parameters, self.MAX_HOLE_AREA, context),
        }
        outputs = [output]
        polygons = destination(self, parameters, self.POLYGONS, context)
        if polygons:
            params["polygons"] = polygons
            outputs.append(polygons)
        return params, [dsm], outputs

    def result_path(self, result, key, parameters, name, context) -> str | None:
        """The path the engine reports for ``key``, else the requested one if it was written."""
        value = result.get(key)
        if isinstance(value, str) and value:
            return value
        requested = destination(self, parameters, name, context)
        return requested if requested and os.path.exists(requested) else None

    def mask_outputs(self, result, parameters, context) -> dict:
        out = {self.OUTPUT: self.result_path(result, "output", parameters, self.OUTPUT, context)}
        style_on_load(context, out[self.OUTPUT], GAP_MASK)
        polygons = self.result_path(result, "polygons", parameters, self.POLYGONS, context)
        if polygons:
            out[self.POLYGONS] = polygons
            style_on_load(context, polygons, POLYGONS)
        return out
