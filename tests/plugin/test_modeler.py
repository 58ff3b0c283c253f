"""The shipped graphical-modeler chain: preprocess -> train -> infer -> evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

MODEL = Path(__file__).resolve().parents[2] / "resources" / "canopygaps_chain.model3"


def load_model():
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL)), MODEL
    return model


def test_model_file_matches_the_algorithms(provider):
    """Every child resolves, and every wired parameter exists in the algorithm."""
    model = load_model()
    children = model.childAlgorithms()
    assert set(children) == {"preprocess", "train", "infer", "evaluate"}
    for child in children.values():
        alg = child.algorithm()
        assert alg is not None, child.algorithmId()
        for name in child.parameterSources():
            assert alg.parameterDefinition(name) is not None, (child.childId(), name)
    # train's model file is a file destination that infer takes as a file input
    sources = children["infer"].parameterSources()["MODEL"][0]
    assert (sources.outputChildId(), sources.outputName()) == ("train", "OUTPUT")


def test_model_file_is_up_to_date(provider, tmp_path):
    """resources/canopygaps_chain.model3 is what chm_plugin.modeler builds."""
    from chm_plugin.modeler import build_chain_model

    fresh = build_chain_model()
    shipped = load_model()
    assert set(fresh.childAlgorithms()) == set(shipped.childAlgorithms())
    assert {p.name() for p in fresh.parameterDefinitions()} == {
        p.name() for p in shipped.parameterDefinitions()
    }


@pytest.mark.slow  # 20 s of CPU; every step also runs alone in tests/plugin/test_algorithms.py
def test_chain_runs(provider, rasters, tmp_path, feedback_factory):
    import processing

    from tests.plugin.helpers import scene, write_geotiff

    dsm, _dtm, chm = scene(size=96, seed=4)
    dsm_path = write_geotiff(tmp_path / "site_dsm.tif", dsm)
    chm_path = write_geotiff(tmp_path / "site_chm.tif", chm)
    fb = feedback_factory()
    out = processing.run(
        load_model(),
        {
            "DSM": str(dsm_path),
            "REFERENCE": str(chm_path),
            "THRESHOLDS": "2,5,10",
            "TILE_SIZE": 32,
            "EPOCHS": 1,
            "MAX_STEPS": 2,
            "BASE_CHANNELS": 4,
            "DEPTH": 2,
            "preprocess:Dataset": str(tmp_path / "dataset"),
            "train:Model": str(tmp_path / "model.safetensors"),
            "infer:Gaps": str(tmp_path / "gaps.tif"),
            "evaluate:Report": str(tmp_path / "report"),
        },
        feedback=fb,
    )
    assert (tmp_path / "dataset" / "manifest.json").is_file()
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "gaps.tif").is_file()
    assert (tmp_path / "report" / "metrics.json").is_file()
    assert Path(out["evaluate:Report"]) == tmp_path / "report"
