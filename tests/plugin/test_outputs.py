"""Outputs in other GDAL/OGR formats and as ogr: URIs; conversions are atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.plugin.helpers import run_and_load

pytestmark = pytest.mark.qgis

PARAMS = {"THRESHOLDS": "2,5", "WINDOW": 20, "BACKEND": "inprocess"}


def run(params, context=None):
    import processing

    return processing.run("canopygaps:classical", params, context=context)


def read(path: str) -> np.ndarray:
    from osgeo import gdal

    return gdal.Open(path).ReadAsArray()


def features(source: str) -> tuple[int, list[str]]:
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(source, "x", "ogr")
    assert layer.isValid(), source
    return layer.featureCount(), layer.fields().names()


def test_raster_and_vector_formats(provider, rasters, tmp_path):
    reference = run({"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "ref.tif"), **PARAMS})
    out = run(
        {
            "DSM": rasters["dsm"],
            "OUTPUT": str(tmp_path / "gaps.img"),
            "HEIGHTS": str(tmp_path / "heights.nc"),
            "POLYGONS": str(tmp_path / "gaps.shp"),
            **PARAMS,
        }
    )
    assert out["OUTPUT"] == str(tmp_path / "gaps.img")
    np.testing.assert_array_equal(read(out["OUTPUT"]), read(reference["OUTPUT"]))
    assert Path(out["HEIGHTS"]).is_file()
    count, fields = features(out["POLYGONS"])
    assert count > 0 and {"area_m2"} <= set(fields)
    leftovers = [p.name for p in tmp_path.iterdir() if ".part-" in p.name]
    assert not leftovers


def test_ogr_uri_adds_a_layer_to_an_existing_geopackage(provider, rasters, tmp_path):
    from qgis.core import QgsVectorLayer

    target = tmp_path / "project.gpkg"
    first = run(
        {
            "DSM": rasters["dsm"],
            "OUTPUT": str(tmp_path / "a.tif"),
            "POLYGONS": str(target),
            **PARAMS,
        }
    )
    assert first["POLYGONS"] == str(target)
    n_first, _ = features(str(target))
    uri = f"ogr:dbname='{target}' table=\"gaps_run2\" (geom)"
    out = run({"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "b.tif"), "POLYGONS": uri, **PARAMS})
    assert out["POLYGONS"] == f"{target}|layername=gaps_run2"
    assert features(out["POLYGONS"])[0] == n_first
    gpkg = QgsVectorLayer(str(target), "x", "ogr")
    layers = {s.split("!!::!!")[1] for s in gpkg.dataProvider().subLayers()}
    assert {"gaps", "gaps_run2"} <= layers  # the earlier layer is kept


def test_converted_outputs_load_with_styles(provider, rasters, tmp_path):
    from qgis.core import QgsProject

    uri = f"ogr:dbname='{tmp_path / 'p.gpkg'}' table=\"my_gaps\" (geom)"
    project = QgsProject()
    layers = run_and_load(
        "canopygaps:classical",
        {"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.img"), "POLYGONS": uri, **PARAMS},
        project,
    )
    assert layers[str(tmp_path / "g.img")].renderer().type() == "paletted"
    polygons = next(v for k, v in layers.items() if "layername=my_gaps" in k)
    assert polygons.renderer().type() == "graduatedSymbol"
    project.removeAllMapLayers()


def test_format_that_cannot_hold_the_masks(provider, rasters, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="one band per threshold") as info:
        run({"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.sdat"), **PARAMS})
    assert "GeoTIFF" in str(info.value)
    assert not list(tmp_path.glob("g.*")) and not list(tmp_path.glob(".g.part-*"))
    with pytest.raises(QgsProcessingException, match=r"No raster format writes '\.nope'"):
        run({"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.nope"), **PARAMS})


def test_provider_offers_every_format(provider):
    from qgis.core import QgsRasterFileWriter, QgsVectorFileWriter

    assert provider.defaultRasterFileExtension() == "tif"
    assert provider.defaultVectorFileExtension() == "gpkg"
    assert set(QgsRasterFileWriter.supportedFormatExtensions()) <= set(
        provider.supportedOutputRasterLayerExtensions()
    )
    assert set(QgsVectorFileWriter.supportedFormatExtensions()) <= set(
        provider.supportedOutputVectorLayerExtensions()
    )
