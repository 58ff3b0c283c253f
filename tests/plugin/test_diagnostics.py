"""Diagnostics through each backend."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis


@pytest.mark.parametrize("backend", [1, 2], ids=["inprocess", "subprocess"])
def test_diagnostics(provider, feedback_factory, backend):
    import processing

    fb = feedback_factory()
    out = processing.run("canopygaps:diagnostics", {"BACKEND": backend}, feedback=fb)
    assert out["QGIS_VERSION"].startswith("3.")
    assert out["QGIS_GDAL_VERSION"][0].isdigit()
    assert out["ENGINE_VERSION"]
    assert out["ENGINE_GDAL_VERSION"] not in ("", "None")
    assert out["CUDA_AVAILABLE"] in ("yes", "no")
    assert ("inprocess" if backend == 1 else "subprocess") in out["BACKEND"]
    assert fb.values and fb.values[-1] == pytest.approx(100.0)
    if backend == 2:
        assert any("-m engine request --file" in c for c in fb.commands)
