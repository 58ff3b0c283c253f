"""Gap-mask post-processing by row bands: minimum gap area and hole filling.

Why raster-side and by bands: the masks must agree with the polygons and with the ForestGapR
label rule (8-connected gaps, area = pixels x pixel area, keep area >= min, inclusive), and
whole-raster connected components would break flat memory. So components are labelled **per row
band** with ``scipy.ndimage.label`` and stitched across band borders with a union-find over
component ids (only the last row of the previous band is kept). Pass 1 collects, per global
component, its pixel count and whether it touches the raster border; after resolving the
union-find, pass 2 re-labels each band identically (labelling is deterministic), looks up each
component's verdict and writes the band. Memory: one band (uint8 mask, int32 labels; only the
border rows of a band are ever held as global int64 ids) plus a few numbers per component. The
caller bounds a band's pixels (:func:`engine.inference.pipeline.post_bands`: fewer rows for
wider rasters).

* Min area removes 8-connected gap components smaller than ``min_area_px`` pixels.
* Hole filling turns into gap the canopy pixels of the 4-connected components of "not gap"
  (canopy or nodata; 4-connectivity is the dual of 8-connected gaps) that do not touch the
  raster border and are at most ``max_hole_px`` pixels (None = any size). Nodata stays nodata.
  Holes are filled first, then small gaps removed (a filled gap counts with its holes).

A band source is a callable ``read(row_off, height) -> uint8[T, h, W]`` (0 canopy, 1 gap,
255 nodata); bands are ``(start, stop)`` row ranges in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

GAP, CANOPY, NODATA = 1, 0, 255
EIGHT = np.ones((3, 3), dtype=bool)
FOUR = ndimage.generate_binary_structure(2, 1)

BandRead = Callable[[int, int], NDArray[np.uint8]]


class StreamingComponents:
    """Connected components of a binary raster fed band by band (two passes)."""

    def __init__(self, width: int, connectivity: int = 8) -> None:
        self.width = width
        self.structure = EIGHT if connectivity == 8 else FOUR
        self.eight = connectivity == 8
        self.parent = np.zeros(1, dtype=np.int64)  # id 0 = background
        self.area = np.zeros(1, dtype=np.int64)
        self.border = np.zeros(1, dtype=bool)
        self.offsets: list[int] = []
        self._prev: NDArray[np.int64] | None = None
        self.roots: NDArray[np.int64] | None = None

    def lookup(
        self, fg: NDArray[np.bool_], band_index: int, verdict: NDArray[np.bool_]
    ) -> NDArray[np.bool_]:
        """Pass 2: ``verdict`` (per global id, after :meth:`finish`) of every pixel of band
        ``band_index``; False on the background."""
        lab, n = ndimage.label(fg, structure=self.structure)  # int32, as in pass 1
        offset = self.offsets[band_index]
        local = np.zeros(n + 1, dtype=bool)
        local[1:] = verdict[offset + 1 : offset + n + 1]
        return local[lab]

    def add(self, fg: NDArray[np.bool_], first: bool, last: bool) -> None:
        """Pass 1: label the next band and connect it to the previous one."""
        lab, n = ndimage.label(fg, structure=self.structure)
        offset = len(self.parent) - 1
        self.offsets.append(offset)

        def glob(row: NDArray[np.int32]) -> NDArray[np.int64]:
            return np.where(row > 0, row.astype(np.int64) + offset, 0)

        self.parent = np.concatenate([self.parent, np.arange(offset + 1, offset + n + 1)])
        self.area = np.concatenate([self.area, np.bincount(lab.ravel(), minlength=n + 1)[1:]])
        edge = np.zeros(n + 1, dtype=bool)
        edge[lab[:, 0]] = True
        edge[lab[:, -1]] = True
        if first:
            edge[lab[0]] = True
        if last:
            edge[lab[-1]] = True
        self.border = np.concatenate([self.border, edge[1:]])
        if self._prev is not None and n:
            self._connect(self._prev, glob(lab[0]))
        self._prev = glob(lab[-1])

    def _connect(self, up: NDArray[np.int64], down: NDArray[np.int64]) -> None:
        pairs = [np.stack([up, down], 1)]
        if self.eight:
            pairs.append(np.stack([up[:-1], down[1:]], 1))
            pairs.append(np.stack([up[1:], down[:-1]], 1))
        p = np.concatenate(pairs)
        p = p[(p[:, 0] > 0) & (p[:, 1] > 0)]
        for a, b in np.unique(p, axis=0):
            ra, rb = self._find(int(a)), self._find(int(b))
            if ra != rb:
                self.parent[max(ra, rb)] = min(ra, rb)

    def _find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = int(parent[root])
        while parent[i] != root:
            parent[i], i = root, int(parent[i])
        return root

    def finish(self) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Resolve components: ``(area per id, touches-border per id)`` of each id's component."""
        roots = self.parent.copy()
        while True:
            nxt = roots[roots]
            if np.array_equal(nxt, roots):
                break
            roots = nxt
        self.roots = roots
        area = np.bincount(roots, weights=self.area, minlength=len(roots)).astype(np.int64)
        border = np.bincount(roots, weights=self.border, minlength=len(roots)) > 0
        return area[roots], border[roots]


def _fill(mask: NDArray[np.uint8], hole: NDArray[np.bool_]) -> NDArray[np.uint8]:
    out = mask.copy()
    out[(mask == CANOPY) & hole] = GAP
    return out


def postprocess_bands(
    read: BandRead,
    bands: Sequence[tuple[int, int]],
    width: int,
    n_thresholds: int,
    min_area_px: float = 0.0,
    fill_holes: bool = False,
    max_hole_px: float | None = None,
    check: Callable[[], None] = lambda: None,
) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """Yield ``(row_off, uint8[T, h, W])`` post-processed bands (see the module docstring).

    ``check()`` runs before each band of the labelling passes (it may raise ``Cancelled``)."""
    last = len(bands) - 1
    holes: list[NDArray[np.bool_]] = []
    if fill_holes:
        comps = [StreamingComponents(width, 4) for _ in range(n_thresholds)]
        for i, (a, b) in enumerate(bands):
            check()
            m = read(a, b - a)
            for t in range(n_thresholds):
                comps[t].add(m[t] != GAP, i == 0, i == last)
        for c in comps:
            area, border = c.finish()
            ok = ~border if max_hole_px is None else ~border & (area <= max_hole_px)
            ok[0] = False
            holes.append(ok)

    def filled(i: int, m: NDArray[np.uint8]) -> NDArray[np.uint8]:
        if not fill_holes:
            return m
        return np.stack(
            [_fill(m[t], comps[t].lookup(m[t] != GAP, i, holes[t])) for t in range(len(m))]
        )

    keep: list[NDArray[np.bool_]] = []
    if min_area_px > 0:
        gaps = [StreamingComponents(width, 8) for _ in range(n_thresholds)]
        for i, (a, b) in enumerate(bands):
            check()
            m = filled(i, read(a, b - a))
            for t in range(n_thresholds):
                gaps[t].add(m[t] == GAP, i == 0, i == last)
        for g in gaps:
            area, _ = g.finish()
            k = area >= min_area_px - 1e-9
            k[0] = True
            keep.append(k)
    for i, (a, b) in enumerate(bands):
        m = filled(i, read(a, b - a))
        if min_area_px > 0:
            m = m.copy()
            for t in range(n_thresholds):
                kept = gaps[t].lookup(m[t] == GAP, i, keep[t])
                m[t][(m[t] == GAP) & ~kept] = CANOPY
        yield a, m


def postprocess_array(
    mask: NDArray[np.uint8],
    min_area_px: float = 0.0,
    fill_holes: bool = False,
    max_hole_px: float | None = None,
) -> NDArray[np.uint8]:
    """Whole-array reference of :func:`postprocess_bands` (``mask[T, H, W]``; tests, small data)."""
    out = mask.copy()
    for t in range(len(out)):
        m = out[t]
        if fill_holes:
            lab, n = ndimage.label(m != GAP, structure=FOUR)
            area = np.bincount(lab.ravel(), minlength=n + 1)
            edge = np.zeros(n + 1, dtype=bool)
            for line in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
                edge[line] = True
            hole = ~edge if max_hole_px is None else ~edge & (area <= max_hole_px)
            hole[0] = False
            m[(m == CANOPY) & hole[lab]] = GAP
        if min_area_px > 0:
            lab, n = ndimage.label(m == GAP, structure=EIGHT)
            area = np.bincount(lab.ravel(), minlength=n + 1)
            small = area < min_area_px - 1e-9
            small[0] = False
            m[small[lab]] = CANOPY
    return out
