"""The shipped graphical-modeler chain: preprocess -> train -> infer -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

MODEL = Path(__file__).resolve().parents[2] / "resources" / "canopygaps_chain.model3"
TINY = {"TILE_SIZE": 32, "EPOCHS": 1, "MAX_STEPS": 2, "BASE_CHANNELS": 4, "DEPTH": 2}


def load_model():
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL)), MODEL
    return model


def test_model_file_validates(provider):
    ok, issues = load_model().validate()
    assert ok and issues == []


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
    for child_id in ("preprocess", "evaluate"):
        kind = children[child_id].parameterSources()["REFERENCE_KIND"][0]
        assert kind.parameterName() == "REFERENCE_KIND"


def test_model_file_is_up_to_date(provider, tmp_path):
    """resources/canopygaps_chain.model3 is what ``python -m chm_plugin.modeler`` writes."""
    from qgis.core import QgsProcessingModelAlgorithm

    from chm_plugin.modeler import build_chain_model

    fresh_file = tmp_path / "fresh.model3"
    assert build_chain_model().toFile(str(fresh_file))
    fresh = QgsProcessingModelAlgorithm()
    assert fresh.fromFile(str(fresh_file))

    def plain(model) -> str:
        return json.dumps(model.toVariant(), sort_keys=True, default=str)

    assert plain(fresh) == plain(load_model()), "run: python -m chm_plugin.modeler"


def test_chain_is_offered_and_documented(provider):
    from qgis.core import QgsApplication

    chain = QgsApplication.processingRegistry().algorithmById("canopygaps:chain")
    assert chain is not None and chain.group() == "Models"
    assert chain.displayName().endswith("(chain)")
    help_content = chain.helpContent()
    for param in chain.parameterDefinitions():
        assert param.help() and help_content.get(param.name()) == param.help(), param.name()
    kind = chain.parameterDefinition("REFERENCE_KIND")
    assert kind.options() == ["chm", "dtm"] and kind.usesStaticStrings()
    assert "<" not in chain.shortHelpString()
    assert chain.create().name() == "chain"  # a fresh instance keeps the provider's identity


@pytest.mark.parametrize("kind", ["chm", "dtm"])
def test_chain_runs(provider, tmp_path, feedback_factory, kind):
    import processing

    from tests.plugin.helpers import scene, write_geotiff

    dsm, dtm, chm = scene(size=96, seed=4)
    dsm_path = write_geotiff(tmp_path / "site_dsm.tif", dsm)
    ref_path = write_geotiff(tmp_path / f"site_{kind}.tif", chm if kind == "chm" else dtm)
    fb = feedback_factory()
    out = processing.run(
        "canopygaps:chain",
        {
            "DSM": str(dsm_path),
            "REFERENCE": str(ref_path),
            "REFERENCE_KIND": kind,
            "THRESHOLDS": "2,5,10",
            **TINY,
            "preprocess:Dataset": str(tmp_path / "dataset"),
            "train:Model": str(tmp_path / "model.safetensors"),
            "infer:Gaps": str(tmp_path / "gaps.tif"),
            "evaluate:Report": str(tmp_path / "report"),
        },
        feedback=fb,
    )
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    sources = manifest["sites"][0]["sources"]
    assert sources[kind]["path"] == str(ref_path)  # the reference went in as a CHM or a DTM
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "gaps.tif").is_file()
    metrics = (tmp_path / "report" / "metrics.json").read_text()
    assert str(ref_path) in metrics
    assert Path(out["evaluate:Report"]) == tmp_path / "report"
