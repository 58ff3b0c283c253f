"""The Docker backend through the plugin, with tests/docker/fake_docker standing in for docker."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.plugin.helpers import ROOT

pytestmark = pytest.mark.qgis

FAKE_DOCKER = ROOT / "tests" / "docker" / "fake_docker"
DOCKER = "docker"


@pytest.fixture
def fake_docker(tmp_path_factory, monkeypatch):
    if not FAKE_DOCKER.exists():
        pytest.skip("tests/docker/fake_docker is absent")
    home = tmp_path_factory.mktemp("fake-docker")  # outside the (read-only) input folders
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(FAKE_DOCKER)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(home / "fake_docker.log"))
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(home / "fake_docker_state"))
    for key in ("FAKE_DOCKER_INFO_OK", "FAKE_DOCKER_GPUS", "FAKE_DOCKER_IMAGES"):
        monkeypatch.delenv(key, raising=False)
    return home / "fake_docker.log"


def invocations(log: Path) -> list[dict]:
    return (
        [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    )


def test_classical_in_docker(provider, fake_docker, rasters, tmp_path, feedback_factory):
    import processing

    out_dir = tmp_path / "out"
    fb = feedback_factory()
    out = processing.run(
        "canopygaps:classical",
        {
            "DSM": rasters["dsm"],
            "THRESHOLDS": "2,5",
            "WINDOW": 20,
            "OUTPUT": str(out_dir / "gaps.tif"),
            "POLYGONS": str(out_dir / "gaps.gpkg"),
            "BACKEND": DOCKER,
        },
        feedback=fb,
    )
    # result paths are host paths again
    assert out["OUTPUT"] == str(out_dir / "gaps.tif") and Path(out["OUTPUT"]).is_file()
    assert Path(out["POLYGONS"]).is_file()
    assert any(c.startswith("docker run") or "/docker run" in c for c in fb.commands)
    assert fb.values and max(fb.values) == pytest.approx(100.0)
    assert invocations(fake_docker)


def test_cancel_in_docker_stops_the_container(provider, fake_docker, tmp_path, feedback_factory):
    import processing
    from qgis.core import QgsProcessingException

    fb = feedback_factory(cancel_after_progress=True)
    target = tmp_path / "scene"
    with pytest.raises(QgsProcessingException, match=r"[Cc]ancel"):
        processing.run(
            "canopygaps:synth", {"SIZE": 768, "OUTPUT": str(target), "BACKEND": DOCKER}, feedback=fb
        )
    assert not target.exists()
    assert any(" stop " in c for c in fb.commands)  # the backend's stop command ran too


def test_missing_image_gives_a_fix_it_message(
    provider, fake_docker, rasters, tmp_path, monkeypatch
):
    import processing
    from qgis.core import QgsProcessingException

    monkeypatch.setenv("FAKE_DOCKER_IMAGES", "other:image")
    with pytest.raises(QgsProcessingException, match="image") as info:
        processing.run(
            "canopygaps:classical",
            {"DSM": rasters["dsm"], "OUTPUT": str(tmp_path / "g.tif"), "BACKEND": DOCKER},
        )
    assert "Docker image of the engine" in str(info.value)
