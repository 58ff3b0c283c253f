"""Relative paths given to an algorithm are resolved where they were typed, not in the
engine's private working folder (qgis_process users type relative paths)."""

from __future__ import annotations

from chm_plugin.backends.base import EngineRequest


def test_relative_inputs_and_outputs_become_absolute_everywhere() -> None:
    req = EngineRequest(
        "evaluate",
        {
            "sites": [{"dsm": "scene/dsm.tif", "predictions": {"m": "gaps.tif"}}],
            "output": "report",
            "models": ["/abs/model.safetensors"],
            "thresholds": [2.0, 5.0],
            "name": "gaps.tif-is-not-a-listed-path",
        },
        inputs=["scene/dsm.tif", "gaps.tif", "/abs/model.safetensors"],
        outputs=["report"],
    )
    out = req.with_absolute_paths("/work/here")
    site = out.params["sites"][0]
    assert site["dsm"] == "/work/here/scene/dsm.tif"
    assert site["predictions"]["m"] == "/work/here/gaps.tif"
    assert out.params["output"] == "/work/here/report"
    assert out.params["models"] == ["/abs/model.safetensors"]
    assert out.params["name"] == "gaps.tif-is-not-a-listed-path"
    assert out.inputs == [
        "/work/here/scene/dsm.tif",
        "/work/here/gaps.tif",
        "/abs/model.safetensors",
    ]
    assert out.outputs == ["/work/here/report"]
    assert req.params["output"] == "report"  # the original is unchanged
