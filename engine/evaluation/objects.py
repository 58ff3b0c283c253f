"""Object-level evaluation: 8-connected gaps matched one-to-one at IoU >= 0.5.

A gap object is an 8-connected component of gap pixels (the ForestGapR rule). A predicted and a
reference object *match* when their intersection over union is at least ``min_iou``. Matching
is greedy by decreasing IoU with each object used once (ties by lowest label). With
``min_iou >= 0.5`` the matching is unique anyway: two references matching one prediction at IoU
0.5 would have to be halves of it, i.e. the same 8-connected component.

Counts are kept per gap-size class (edges in m², e.g. ``<10, 10-100, 100-1000, >=1000``): a
predicted object counts in the class of its own area, a reference object in the class of its
own. Object precision = matched predicted / predicted, recall = matched reference / reference,
F1 = 2PR / (P + R). Counts are summed over sites before the ratios are taken.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import NODATA

DEFAULT_SIZE_EDGES: tuple[float, ...] = (10.0, 100.0, 1000.0)
EIGHT = np.ones((3, 3), dtype=bool)


def size_class_names(edges: tuple[float, ...] | list[float]) -> list[str]:
    """Readable class names for ``edges`` (``[10, 100]`` -> ``<10``, ``10-100``, ``>=100``)."""
    e = [f"{v:g}" for v in edges]
    if not e:
        return ["all"]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in itertools.pairwise(e)] + [f">={e[-1]}"]


def size_class(
    areas: NDArray[np.floating], edges: tuple[float, ...] | list[float]
) -> NDArray[np.intp]:
    """Class index of each area: class i holds ``edges[i-1] <= area < edges[i]``."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), areas, side="right")


def label_gaps(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """8-connected labels (1..n, 0 = background) of a boolean gap mask."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=EIGHT)
    return labels.astype(np.int32, copy=False), int(n)


def filter_by_area(
    labels: NDArray[np.int32],
    n: int,
    pixel_area: float,
    min_area: float | None = None,
    max_area: float | None = None,
) -> tuple[NDArray[np.int32], int]:
    """Drop objects outside ``min_area <= area <= max_area`` (m², inclusive); relabel 1..k."""
    if min_area is None and max_area is None:
        return labels, n
    areas = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64) * pixel_area
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    if min_area is not None:
        keep &= areas >= min_area
    if max_area is not None:
        keep &= areas <= max_area
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels], int(keep.sum())


def match_objects(
    pred_labels: NDArray[np.integer],
    n_pred: int,
    ref_labels: NDArray[np.integer],
    n_ref: int,
    min_iou: float = 0.5,
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(pred_id, ref_id, iou)`` with ``iou >= min_iou``, best first."""
    pa = np.bincount(pred_labels.ravel(), minlength=n_pred + 1).astype(np.int64)
    ra = np.bincount(ref_labels.ravel(), minlength=n_ref + 1).astype(np.int64)
    both = (pred_labels > 0) & (ref_labels > 0)
    if not both.any():
        return []
    keys = pred_labels[both].astype(np.int64) * (n_ref + 1) + ref_labels[both].astype(np.int64)
    uniq, inter = np.unique(keys, return_counts=True)
    p, r = uniq // (n_ref + 1), uniq % (n_ref + 1)
    union = pa[p] + ra[r] - inter
    iou = inter / union
    # Exact rational comparison so that IoU = 0.5 exactly is kept (no float rounding).
    ok = inter * 10**9 >= np.rint(min_iou * 10**9).astype(np.int64) * union
    order = np.lexsort((r[ok], p[ok], -iou[ok]))
    used_p: set[int] = set()
    used_r: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for pi, ri, v in zip(p[ok][order], r[ok][order], iou[ok][order], strict=True):
        if int(pi) in used_p or int(ri) in used_r:
            continue
        used_p.add(int(pi))
        used_r.add(int(ri))
        matches.append((int(pi), int(ri), float(v)))
    return matches


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _prf(matched_pred: int, n_pred: int, matched_ref: int, n_ref: int) -> dict[str, float | None]:
    p = _ratio(matched_pred, n_pred)
    r = _ratio(matched_ref, n_ref)
    f1 = 2 * p * r / (p + r) if p is not None and r is not None and (p + r) > 0 else None
    if p == 0 and r == 0:
        f1 = 0.0
    return {"precision": p, "recall": r, "f1": f1}


@dataclass
class ObjectCounts:
    """Object counts per size class; add instances to sum over sites."""

    edges: tuple[float, ...] = DEFAULT_SIZE_EDGES
    n_pred: list[int] = field(default_factory=list)
    n_ref: list[int] = field(default_factory=list)
    matched_pred: list[int] = field(default_factory=list)
    matched_ref: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        k = len(self.edges) + 1
        for name in ("n_pred", "n_ref", "matched_pred", "matched_ref"):
            if not getattr(self, name):
                setattr(self, name, [0] * k)

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        if tuple(self.edges) != tuple(other.edges):
            raise ValueError("Cannot add object counts with different size classes.")

        def add(a: list[int], b: list[int]) -> list[int]:
            return [x + y for x, y in zip(a, b, strict=True)]

        return ObjectCounts(
            tuple(self.edges),
            add(self.n_pred, other.n_pred),
            add(self.n_ref, other.n_ref),
            add(self.matched_pred, other.matched_pred),
            add(self.matched_ref, other.matched_ref),
        )

    def metrics(self) -> dict[str, Any]:
        """Overall and per-class counts, precision, recall and F1 (None when undefined)."""
        total: dict[str, Any] = {
            "n_pred": sum(self.n_pred),
            "n_ref": sum(self.n_ref),
            "matched": sum(self.matched_pred),
        }
        total.update(
            _prf(sum(self.matched_pred), sum(self.n_pred), sum(self.matched_ref), sum(self.n_ref))
        )
        classes = []
        for i, name in enumerate(size_class_names(self.edges)):
            row: dict[str, Any] = {
                "size_class_m2": name,
                "n_pred": self.n_pred[i],
                "n_ref": self.n_ref[i],
                "matched_pred": self.matched_pred[i],
                "matched_ref": self.matched_ref[i],
            }
            row.update(
                _prf(self.matched_pred[i], self.n_pred[i], self.matched_ref[i], self.n_ref[i])
            )
            classes.append(row)
        return {"all": total, "by_size": classes}


@dataclass
class ObjectResult:
    """Counts plus the areas (m²) of every predicted and reference object."""

    counts: ObjectCounts
    pred_areas: NDArray[np.float64]
    ref_areas: NDArray[np.float64]
    matches: list[tuple[int, int, float]]


def object_counts(
    pred: NDArray[np.uint8],
    ref: NDArray[np.uint8],
    pixel_area: float,
    edges: tuple[float, ...] = DEFAULT_SIZE_EDGES,
    min_iou: float = 0.5,
    pred_min_area: float | None = None,
    pred_max_area: float | None = None,
) -> ObjectResult:
    """Object matching of two 0/1/255 masks restricted to their common valid pixels.

    ``pred_min_area``/``pred_max_area`` apply the reference label rule's area filter to the
    predicted objects too (otherwise every 1-pixel speckle is a false object).
    """
    common = (pred != NODATA) & (ref != NODATA)
    pl, npred = label_gaps((pred == 1) & common)
    pl, npred = filter_by_area(pl, npred, pixel_area, pred_min_area, pred_max_area)
    rl, nref = label_gaps((ref == 1) & common)
    pa = np.bincount(pl.ravel(), minlength=npred + 1)[1:].astype(np.float64) * pixel_area
    ra = np.bincount(rl.ravel(), minlength=nref + 1)[1:].astype(np.float64) * pixel_area
    matches = match_objects(pl, npred, rl, nref, min_iou)
    k = len(edges) + 1
    pc, rc = size_class(pa, edges), size_class(ra, edges)
    counts = ObjectCounts(
        tuple(edges),
        np.bincount(pc, minlength=k).tolist(),
        np.bincount(rc, minlength=k).tolist(),
        [0] * k,
        [0] * k,
    )
    for pi, ri, _ in matches:
        counts.matched_pred[int(pc[pi - 1])] += 1
        counts.matched_ref[int(rc[ri - 1])] += 1
    return ObjectResult(counts, pa, ra, matches)
