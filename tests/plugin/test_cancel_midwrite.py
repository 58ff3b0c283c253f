"""Cancel while the engine writes its outputs: nothing is left at the destination.

The feedback cancels at the first progress event after a temporary output has appeared in the
destination folder, so the engine is stopped mid-write. Then the engine must remove its
temporaries (the subprocess engine on SIGTERM, the in-process one on ``Cancelled``) or the
runner must (after a kill). A cancel that fires before anything is written (as in
``test_synth_cancel``) passes even when neither does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.inference.helpers import save, smooth_dsm, tiny_unet
from tests.plugin.helpers import write_geotiff

pytestmark = pytest.mark.qgis


def _cancelling_feedback(written: Callable[[], bool]):  # -> QgsProcessingFeedback
    """A feedback that cancels at the first progress event where ``written()`` holds."""
    from qgis.core import QgsProcessingFeedback

    class _Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.progressChanged.connect(self._on_progress)

        def _on_progress(self, value: float) -> None:
            if not self.isCanceled() and written():
                self.cancel()

    return _Feedback()


@pytest.mark.parametrize("backend", ["subprocess", "inprocess"])
def test_cancel_mid_write_leaves_the_destination_empty(
    provider, tmp_path: Path, backend: str
) -> None:
    import processing
    from qgis.core import QgsProcessingException

    dsm = write_geotiff(tmp_path / "dsm.tif", smooth_dsm(1024, 1024, seed=2))
    model = save(tiny_unet(), tmp_path / "unet.safetensors")
    dest = tmp_path / "dest"
    dest.mkdir()
    feedback = _cancelling_feedback(lambda: any(dest.iterdir()))
    params = {"DSM": str(dsm), "MODEL": str(model), "OUTPUT": str(dest / "gaps.tif")}
    params.update(POLYGONS=str(dest / "gaps.gpkg"), PROBABILITIES=str(dest / "prob.tif"))
    params.update(TILE_SIZE=64, DEVICE="cpu", PRECISION="fp32", RUNTIME="torch")
    with pytest.raises(QgsProcessingException, match=r"[Cc]ancel"):
        processing.run("canopygaps:infer", {**params, "BACKEND": backend}, feedback=feedback)
    assert feedback.isCanceled()  # only ever set once a temporary output existed
    assert sorted(p.name for p in dest.rglob("*")) == []
