"""Gap labels from a canopy height model, with the ForestGapR rule.

Rule (``ForestGapR::getForestGaps``): a pixel is gap where ``CHM <= threshold`` (inclusive);
nodata is never gap; gaps are 8-connected components (``scipy.ndimage.label`` with a 3x3
structure of ones); the area of a gap is ``pixels x |pixel area|``; with size filters a gap is
kept when ``min_area <= area <= max_area`` (both inclusive). Gap ids number the *kept* gaps
1..k in row-major order of their first pixel: ForestGapR labels again after the size filter,
so its ids (e.g. 13, 14, 17 in its ``ALS_CHM_DUC`` example) count surviving gaps only.

Nesting across thresholds. Without size filters the masks are nested by construction
(``CHM <= 2`` implies ``CHM <= 5``). A *minimum* area keeps nesting too: a component kept at a
low threshold lies inside one component at any higher threshold, and that component is at least
as large, so it is kept as well. A *maximum* area can break nesting: a small gap at 2 m may merge
into one larger than ``max_area`` at 5 m and be dropped there. With ``nested=True``
:func:`gap_masks` therefore takes, for each threshold, the union of its filtered mask with the
filtered masks of all lower thresholds ("once a gap, always a gap at higher thresholds"), so
``mask(t1) <= mask(t2)`` whenever ``t1 <= t2``. With ``nested=False`` each threshold's filtered
mask is returned as is (the exact ForestGapR output per threshold).

Label rasters are uint8: 0 canopy, 1 gap, 255 nodata (:data:`NODATA_LABEL`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

NODATA_LABEL = 255
EIGHT = np.ones((3, 3), dtype=bool)
FOUR = ndimage.generate_binary_structure(2, 1)

LABEL_RULE = {
    "name": "forestgapr",
    "gap": "chm <= threshold",
    "nodata": "never gap (label 255)",
    "connectivity": 8,
    "area": "pixels * |pixel area|",
    "size_filter": "min_area_m2 <= area <= max_area_m2 (inclusive)",
    "nesting": "union with the masks of lower thresholds after size filtering",
}


def label_gaps(
    chm: NDArray[np.floating],
    valid: NDArray[np.bool_] | None,
    threshold: float,
    pixel_area: float = 1.0,
    min_area_m2: float | None = None,
    max_area_m2: float | None = None,
    connectivity: int = 8,
    inclusive: bool = True,
) -> NDArray[np.int32]:
    """Gap components: ``int32`` ids 1..k of the kept gaps (row-major), 0 = not a gap.

    ``connectivity`` (8 or 4) and ``inclusive`` exist to show that the rule matters; keep the
    ForestGapR defaults.
    """
    chm = np.asarray(chm)
    ok = np.isfinite(chm) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(chm))
    with np.errstate(invalid="ignore"):
        below = chm <= threshold if inclusive else chm < threshold
    candidate = below & ok
    structure = EIGHT if connectivity == 8 else FOUR
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}.")
    labels, n = ndimage.label(candidate, structure=structure)
    labels = labels.astype(np.int32, copy=False)
    if n == 0 or (min_area_m2 is None and max_area_m2 is None):
        return labels
    area = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64) * abs(pixel_area)
    keep = np.ones(n + 1, dtype=bool)
    if min_area_m2 is not None:
        keep &= area >= min_area_m2
    if max_area_m2 is not None:
        keep &= area <= max_area_m2
    keep[0] = False
    # ForestGapR labels again after filtering: kept gaps are renumbered 1..k in row-major order.
    renumber = np.zeros(n + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return renumber[labels]


def gap_mask(
    chm: NDArray[np.floating],
    valid: NDArray[np.bool_] | None,
    threshold: float,
    pixel_area: float = 1.0,
    min_area_m2: float | None = None,
    max_area_m2: float | None = None,
) -> NDArray[np.bool_]:
    """Boolean gap mask at one threshold (ForestGapR rule, size filters inclusive)."""
    return label_gaps(chm, valid, threshold, pixel_area, min_area_m2, max_area_m2) > 0


def nest_masks(
    masks: Sequence[NDArray[np.bool_]], thresholds: Sequence[float]
) -> list[NDArray[np.bool_]]:
    """Each mask united with the masks of lower thresholds (masks in the order of
    ``thresholds``): a gap at one threshold is a gap at every higher one."""
    order = np.argsort(np.asarray(thresholds, dtype=np.float64), kind="stable")
    out = list(masks)
    running = np.zeros(masks[0].shape, dtype=bool)
    for i in order:
        running |= masks[i]
        out[i] = running.copy()
    return out


def gap_masks(
    chm: NDArray[np.floating],
    valid: NDArray[np.bool_] | None,
    thresholds: Sequence[float],
    pixel_area: float = 1.0,
    min_area_m2: float | None = None,
    max_area_m2: float | None = None,
    nested: bool = True,
) -> NDArray[np.uint8]:
    """Label stack ``uint8 [T, H, W]``: 1 gap, 0 canopy, 255 nodata (order of ``thresholds``).

    ``nested=True`` makes masks monotone in the threshold (see the module docstring).
    """
    chm = np.asarray(chm)
    ok = np.isfinite(chm) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(chm))
    masks = [gap_mask(chm, ok, t, pixel_area, min_area_m2, max_area_m2) for t in thresholds]
    if nested:
        masks = nest_masks(masks, thresholds)
    out = np.empty((len(masks), *chm.shape), dtype=np.uint8)
    for k, m in enumerate(masks):
        out[k] = m
        out[k][~ok] = NODATA_LABEL
    return out


@dataclass(frozen=True)
class GapStat:
    """One gap: id, area (m²) and CHM maximum, minimum and mean inside it."""

    gap_id: int
    area: float
    chm_max: float
    chm_min: float
    chm_mean: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON, CSV)."""
        return asdict(self)


def gap_stats(
    chm: NDArray[np.floating], labels: NDArray[np.integer], pixel_area: float = 1.0
) -> list[GapStat]:
    """Per-gap statistics of a label image (as ``ForestGapR::GapStats``), ordered by id."""
    lab = np.asarray(labels).ravel()
    sel = lab > 0
    if not sel.any():
        return []
    ids, inverse = np.unique(lab[sel], return_inverse=True)
    values = np.asarray(chm, dtype=np.float64).ravel()[sel]
    count = np.bincount(inverse)
    total = np.bincount(inverse, weights=values)
    vmax = np.full(ids.size, -np.inf)
    vmin = np.full(ids.size, np.inf)
    np.maximum.at(vmax, inverse, values)
    np.minimum.at(vmin, inverse, values)
    return [
        GapStat(int(i), float(c * abs(pixel_area)), float(hi), float(lo), float(s / c))
        for i, c, s, hi, lo in zip(ids, count, total, vmax, vmin, strict=True)
    ]


def gap_fraction(labels: NDArray[np.uint8]) -> list[float | None]:
    """Gap fraction of valid pixels per threshold of a ``[T, H, W]`` label stack."""
    out: list[float | None] = []
    for k in range(labels.shape[0]):
        ok = labels[k] != NODATA_LABEL
        n = int(ok.sum())
        out.append(float((labels[k] == 1).sum() / n) if n else None)
    return out
