"""Every parameter of every algorithm reaches the engine request (no engine run).

For each algorithm and each of its parameters, the request built with a distinctive value of
that one parameter must differ from the request built with the defaults, and a schema-driven
parameter must put exactly that value at its engine key. A parameter replaced by a constant,
dropped, or wired to the wrong key fails here. New parameters are covered automatically; a new
parameter type needs a distinctive value in :func:`distinct`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugin.helpers import scene

pytestmark = pytest.mark.qgis

NOT_IN_REQUEST = {"BACKEND"}  # chooses where the engine runs (test_backend_choice)


def write_bands(path: Path, bands: list[np.ndarray]) -> str:
    from osgeo import gdal, osr

    rows, cols = bands[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, len(bands), gdal.GDT_Float32)
    ds.SetGeoTransform((500000.0, 1.0, 0, 5500000.0, 0, -1.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for i, band in enumerate(bands, 1):
        ds.GetRasterBand(i).WriteArray(band.astype("float32"))
    ds = None
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mapping")
    dsm, _dtm, chm = scene(64)
    (root / "dataset").mkdir()
    (root / "dataset2").mkdir()
    (root / "run").mkdir()
    (root / "m2.safetensors").write_bytes(b"x")
    return {
        "dsm": write_bands(root / "dsm.tif", [dsm, dsm + 1]),
        "dsm2": write_bands(root / "other_dsm.tif", [dsm, dsm + 2]),
        "chm": write_bands(root / "chm.tif", [chm, chm + 1]),
        "chm2": write_bands(root / "other_chm.tif", [chm, chm + 2]),
        "mask": write_bands(root / "mask.tif", [chm * 0, chm * 0]),
        "mask2": write_bands(root / "other_mask.tif", [chm * 0, chm * 0]),
        "dataset": str(root / "dataset"),
        "dataset2": str(root / "dataset2"),
        "run": str(root / "run"),
        "model2": str(root / "m2.safetensors"),
        "root": str(root),
    }


def base_parameters(name: str, f: dict[str, str]) -> dict[str, Any]:
    out = f["root"]
    return {
        "preprocess": {"DSM": f["dsm"], "REFERENCE": f["chm"], "OUTPUT": f"{out}/ds"},
        "train": {"DATASET": f["dataset"], "OUTPUT": f"{out}/m.safetensors"},
        "infer": {"DSM": f["dsm"], "OUTPUT": f"{out}/gaps.tif"},
        "classical": {"DSM": f["dsm"], "OUTPUT": f"{out}/gaps.tif"},
        "evaluate": {
            "PREDICTION": f["mask"],
            "REFERENCE": f["chm"],
            "DSM": f["dsm"],
            "OUTPUT": f"{out}/report",
        },
        "synth": {"OUTPUT": f"{out}/scene"},
        "diagnostics": {},
    }[name]


def _number(param) -> float:
    default = param.defaultValue()
    lo, hi = param.minimum(), param.maximum()
    start = default if default is not None else max(lo, 0)
    integer = param.dataType() == param.Integer
    value = start + (3 if integer else 0.37)
    if value > hi:
        value = (max(lo, 0) + hi) / 2 + (0 if integer else 0.013)
    return int(value) if integer else value


def distinct(param, f: dict[str, str]) -> tuple[Any, str]:
    """(a value of ``param`` unlike its default, a text that must then be in the request)."""
    kind, name = param.type(), param.name()
    out = f["root"]
    if kind == "number":
        value = _number(param)
        return value, ""
    if kind == "boolean":
        return not param.defaultValue(), ""
    if kind == "enum":
        return next(o for o in param.options() if o != param.defaultValue()), ""
    if kind == "band":
        return 2, "band2"
    if kind == "string":
        text = {"OPTIONS": "zz_marker=7", "THRESHOLDS": "3,7.5"}.get(name, "my_site_x")
        return text, "zz_marker" if name == "OPTIONS" else ("" if name == "THRESHOLDS" else text)
    if kind == "raster":
        other = {"DSM": f["dsm2"], "REFERENCE": f["chm2"], "PREDICTION": f["mask2"]}[name]
        return other, other
    if kind == "file":
        other = {"MODEL": f["model2"], "DATASET": f["dataset2"], "RUN_DIR": f["run"]}[name]
        return other, other
    if kind == "multilayer":  # EXTRA_DSMS, set with EXTRA_REFERENCES by the caller
        return [f["dsm2"]], f["dsm2"]
    if kind == "crs":
        return "EPSG:32633", "EPSG:32633"
    if kind in ("rasterDestination", "folderDestination"):
        return f"{out}/alt_{name.lower()}.tif", f"alt_{name.lower()}"
    if kind == "vectorDestination":
        return f"{out}/alt_{name.lower()}.gpkg", f"alt_{name.lower()}"
    if kind == "fileDestination":
        return f"{out}/alt_{name.lower()}.safetensors", f"alt_{name.lower()}"
    raise AssertionError(f"{name}: no distinctive value for parameters of type {kind}")


def build(alg, parameters: dict[str, Any]):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    instance = alg.create()
    return instance, instance.build_request(
        parameters, QgsProcessingContext(), QgsProcessingFeedback()
    )


def dotted(params: dict[str, Any], key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        node = node[part]
    return node


def expected(param, value: Any) -> Any:
    if param.type() == "string":  # comma-separated numbers
        return [float(v) for v in str(value).split(",")]
    return value


def engine_algorithms(provider):
    from chm_plugin.algorithms.base import EngineAlgorithm

    return [a for a in provider.algorithms() if isinstance(a, EngineAlgorithm)]


def test_every_parameter_reaches_the_request(provider, files):
    checked = 0
    for alg in engine_algorithms(provider):
        base = base_parameters(alg.name(), files)
        _, reference = build(alg, base)
        reference_json = json.dumps(reference.params, sort_keys=True)
        for param in alg.parameterDefinitions():
            name = param.name()
            if name in NOT_IN_REQUEST or name == "EXTRA_REFERENCES":
                continue
            value, token = distinct(param, files)
            changed = {**base, name: value}
            if name == "EXTRA_DSMS":  # a pair: one reference raster per DSM
                changed = {**base, name: [files["dsm2"]], "EXTRA_REFERENCES": [files["chm2"]]}
                token = files["chm2"]  # and the DSM, checked by the difference below
            instance, request = build(alg, changed)
            text = json.dumps(request.params, sort_keys=True)
            assert text != reference_json, f"{alg.name()}: {name} does not reach the engine"
            spec = next((s for s in instance._engine_specs if s.name == name), None)
            if spec is None:
                assert token in text, f"{alg.name()}: {name}={value!r} is not in {text}"
            else:
                got = dotted(request.params, spec.key)
                want = expected(param, value)
                assert got == pytest.approx(want), f"{alg.name()}: {name} -> {spec.key} = {got}"
            checked += 1
    assert checked >= 90  # every algorithm's parameters were visited


def test_request_defaults_are_the_engine_defaults(provider, files):
    """A parameter left at its default sends the engine's default (same schema)."""
    from chm_plugin.schema import field_entry

    for alg in engine_algorithms(provider):
        instance, request = build(alg, base_parameters(alg.name(), files))
        for spec in instance._engine_specs:
            entry = field_entry(instance.COMMAND, spec.key)
            try:
                got = dotted(request.params, spec.key)
            except KeyError:
                continue  # left out: the engine applies its default
            assert got == pytest.approx(entry.get("default")), (alg.name(), spec.key)


def test_backend_choice(provider):
    from qgis.core import QgsProcessingContext

    alg = provider.algorithm("classical").create()
    context = QgsProcessingContext()
    for value, backend in (
        ("default", None),
        ("inprocess", "inprocess"),
        ("subprocess", "subprocess"),
        ("docker", "docker"),
    ):
        assert alg.backend_from({"BACKEND": value}, context) == backend
    assert alg.backend_from({}, context) is None


def test_engine_keys_name_the_parameters(provider, files):
    """Messages can name the parameter of every engine key the request carries."""
    for alg in engine_algorithms(provider):
        instance, request = build(alg, base_parameters(alg.name(), files))
        names = request.key_names
        for spec in instance._engine_specs:
            assert (
                names[spec.key]
                == f"'{instance.parameterDefinition(spec.name).description()}' ({spec.name})"
            )
