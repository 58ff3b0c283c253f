"""Diagnostics through each backend."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_diagnostics(provider, feedback_factory, backend):
    import processing

    fb = feedback_factory()
    out = processing.run("canopygaps:diagnostics", {"BACKEND": backend}, feedback=fb)
    assert out["QGIS_VERSION"].startswith("3.")
    assert out["QGIS_GDAL_VERSION"][0].isdigit()
    assert out["ENGINE_VERSION"]
    assert out["ENGINE_GDAL_VERSION"] not in ("", "None")
    assert out["CUDA_AVAILABLE"] in ("yes", "no")
    assert backend in out["BACKEND"]
    assert fb.values and fb.values[-1] == pytest.approx(100.0)
    if backend == "subprocess":
        assert any("-m engine request --file" in c for c in fb.commands)
