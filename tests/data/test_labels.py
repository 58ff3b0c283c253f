"""Gap label rule (ForestGapR): inclusive threshold, 8-connectivity, inclusive size filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.labels import (
    NODATA_LABEL,
    gap_fraction,
    gap_mask,
    gap_masks,
    gap_stats,
    label_gaps,
)
from engine.io.raster import read_array

# ForestGapR getForestGaps(ALS_CHM_DUC, threshold = 10, size = c(5, 1000)) + GapStats (SOURCES.md)
FORESTGAPR_ROWS = {
    1: (34, 9.22, 1.09, 5.12),
    2: (6, 8.17, 6.06, 7.40),
    3: (5, 9.96, 7.42, 8.85),
    4: (32, 9.91, 4.42, 8.12),
    5: (11, 9.83, 6.23, 8.48),
    6: (44, 9.72, 1.92, 7.31),
    13: (66, 9.94, 0.99, 5.31),
    14: (7, 10.00, 5.83, 7.41),
    17: (21, 8.42, 0.40, 6.02),
}


@pytest.mark.realdata
def test_forestgapr_reference_table(shared_data: Path) -> None:
    chm, valid = read_array(shared_data / "forestgapr" / "ALS_CHM_DUC.tif")
    labels = label_gaps(chm, valid, 10.0, pixel_area=1.0, min_area_m2=5, max_area_m2=1000)
    stats = {s.gap_id: s for s in gap_stats(chm, labels, 1.0)}
    assert len(stats) == 35 and sum(s.area for s in stats.values()) == 601
    assert sorted(stats) == list(range(1, 36))
    for gid, (area, hi, lo, mean) in FORESTGAPR_ROWS.items():
        s = stats[gid]
        assert s.area == area
        assert (round(s.chm_max, 2), round(s.chm_min, 2), round(s.chm_mean, 2)) == (hi, lo, mean)
    # the rule matters: strict '<' shrinks gap 14 to 6 m², 4-connectivity leaves 33 gaps
    strict = gap_stats(chm, label_gaps(chm, valid, 10, 1.0, 5, 1000, inclusive=False), 1.0)
    assert strict[13].area == 6
    four = gap_stats(chm, label_gaps(chm, valid, 10, 1.0, 5, 1000, connectivity=4), 1.0)
    assert len(four) == 33


def test_rule_on_a_tiny_grid() -> None:
    chm = np.array(
        [
            [1.0, 20, 20, 20, 5.0],
            [20, 2.0, 20, 20, 20],
            [20, 20, 20, np.nan, 20],
            [3.0, 3.0, 20, 20, 20],
        ],
        dtype=np.float32,
    )
    valid = np.isfinite(chm)
    # diagonal pixels join (8-connected); nodata is never gap; 5.0 <= 5 is gap
    labels = label_gaps(chm, valid, 5.0)
    assert labels[0, 0] == labels[1, 1] == 1 and labels[0, 4] == 2 and labels[3, 0] == 3
    assert labels[2, 3] == 0
    # size filter is inclusive at both ends and pixel area scales it (0.5 m pixels: 0.25 m²)
    assert gap_mask(chm, valid, 5.0, 0.25, min_area_m2=0.5, max_area_m2=0.5).sum() == 4
    assert gap_mask(chm, valid, 5.0, 0.25, min_area_m2=0.5).sum() == 4
    assert gap_mask(chm, valid, 5.0, 0.25, max_area_m2=0.25).sum() == 1


def test_nested_masks_with_max_area() -> None:
    chm = np.full((6, 6), 30.0, dtype=np.float32)
    chm[2, 2] = 1.0  # small gap at 2 m ...
    chm[1:5, 1:5][chm[1:5, 1:5] > 2] = 4.0  # ... inside a 16 m² gap at 5 m
    chm[0, 5] = np.nan
    masks = gap_masks(chm, None, [5, 2], pixel_area=1.0, max_area_m2=10, nested=True)
    assert masks.dtype == np.uint8 and masks.shape == (2, 6, 6)
    assert masks[1, 2, 2] == 1 and masks[0, 2, 2] == 1  # kept at 5 m through the union
    assert masks[0].sum() - masks[0, 0, 5] == 1  # the 16 m² component itself is too large
    assert masks[0, 0, 5] == masks[1, 0, 5] == NODATA_LABEL
    loose = gap_masks(chm, None, [5, 2], pixel_area=1.0, max_area_m2=10, nested=False)
    assert loose[0, 2, 2] == 0
    # min-area alone is nested without help
    a = gap_masks(chm, None, [2, 5], 1.0, min_area_m2=2, nested=False)
    b = gap_masks(chm, None, [2, 5], 1.0, min_area_m2=2, nested=True)
    np.testing.assert_array_equal(a, b)
    fr = gap_fraction(b)
    assert fr[0] == 0 and fr[1] == pytest.approx(16 / 35)
