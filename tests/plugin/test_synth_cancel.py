"""Synthetic scene through both backends; Cancel leaves no output."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

BACKENDS = pytest.mark.parametrize("backend", ["inprocess", "subprocess"])


@BACKENDS
def test_synth(provider, feedback_factory, tmp_path, backend):
    import processing

    fb = feedback_factory()
    out = processing.run(
        "canopygaps:synth",
        {"SIZE": 64, "SEED": 3, "GAPS": 3, "OUTPUT": str(tmp_path / "scene"), "BACKEND": backend},
        feedback=fb,
    )
    for key in ("DSM", "DTM", "CHM", "SCENE"):
        assert Path(out[key]).is_file(), key
    assert Path(out["OUTPUT"]) == tmp_path / "scene"
    assert fb.values and max(fb.values) == pytest.approx(100.0)


@BACKENDS
def test_cancel_leaves_no_output(provider, feedback_factory, tmp_path, backend):
    import processing
    from qgis.core import QgsProcessingException

    fb = feedback_factory(cancel_after_progress=True)
    target = tmp_path / "scene"
    with pytest.raises(QgsProcessingException, match=r"[Cc]ancel"):
        processing.run(
            "canopygaps:synth",
            {"SIZE": 512, "OUTPUT": str(target), "BACKEND": backend},
            feedback=fb,
        )
    assert fb.isCanceled()
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name]


def test_killed_engine_temporaries_are_removed(provider, tmp_path):
    """After the runner killed an engine, its temporaries of every kind are removed; other
    hidden files next to the output are kept."""
    from chm_plugin.runner import _remove_partials

    names = [
        ".gaps.part-d16a-1-0123abcd.tif",
        ".gaps.staged-d16a-1-0123abcd.tif",
        "..gaps.staged-d16a-1-0123abcd.part-d16a-1-89abcdef.tif",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".gaps.parts").mkdir()
    (tmp_path / ".gaps.parts" / "part0_mask.tif").write_bytes(b"x")
    (tmp_path / ".gapsnotes.txt").write_text("mine")
    _remove_partials([str(tmp_path / "gaps.tif")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gapsnotes.txt"]
