"""Evaluate gap-mask GeoTIFFs of one site against its reference, streaming windows.

Reading goes through :mod:`engine.io.raster` only. The reference heights (a CHM, or DSM - DTM)
are aligned onto the prediction's grid (:func:`engine.io.raster.read_aligned`) and labelled with
the preprocessing rule (:func:`engine.data.labels.gap_masks`: the area filter needs whole gaps,
so the reference is labelled in one piece). Predictions are streamed in row strips aligned to the
gap-fraction cells: confusion counts, cell sums and nesting counts are summed strip by strip;
object matching and gap sizes need whole gaps, so each band is also kept (uint8) for that step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engine.errors import InputError, NoDataError
from engine.evaluation.confusion import NODATA, ConfusionCounts, confusion_counts
from engine.evaluation.gapfraction import CellStats, gap_fraction_stats
from engine.evaluation.heights import DEFAULT_HEIGHT_EDGES
from engine.evaluation.layers import Layers, match_bands, open_layers
from engine.evaluation.nesting import NestingCounts, nesting_counts
from engine.evaluation.objects import DEFAULT_SIZE_EDGES, object_counts
from engine.evaluation.preview import block_mode, error_classes
from engine.evaluation.probability import DEFAULT_BINS
from engine.evaluation.results import BandResult, MethodResult
from engine.events import NullReporter, Reporter
from engine.io.checks import check_projected
from engine.io.grid import RasterInfo
from engine.io.raster import RasterReader, read_aligned, read_info

_BAND_RE = re.compile(r"gap\s*<=?\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*m\b")


def parse_band_threshold(description: str | None) -> float | None:
    """Threshold in metres of a band described like ``"gap <= 5 m"``; None if not of that form."""
    if not description:
        return None
    m = _BAND_RE.search(description)
    return float(m.group(1)) if m else None


@dataclass
class Prediction:
    """A gap-mask GeoTIFF and which band holds each evaluated threshold."""

    method: str
    path: Path
    info: RasterInfo
    band_thresholds: list[float | None]
    assign_crs: str | None = None
    bands: list[int] = field(default_factory=list)
    layers: Layers = field(default_factory=Layers)

    @property
    def thresholds(self) -> list[float] | None:
        """Thresholds of every band, or None when some band is not described."""
        if any(t is None for t in self.band_thresholds):
            return None
        return [float(t) for t in self.band_thresholds if t is not None]


def open_prediction(
    method: str,
    path: Path,
    crs: str | None = None,
    probabilities: Path | None = None,
    heights: Path | None = None,
) -> Prediction:
    """Describe a prediction file (exists, projected, band thresholds) and its optional float
    layers (gap probabilities, canopy heights: :mod:`.layers`); no pixels read."""
    info = read_info(path, what=f"prediction '{method}'")
    assign = None
    if info.crs is None and crs:
        info, assign = info.with_crs(crs), crs
    check_projected(info, what=f"prediction '{method}'")
    described = [parse_band_threshold(d) for d in info.band_descriptions]
    layers = open_layers(method, info, probabilities, heights)
    return Prediction(method, Path(path), info, described, assign, layers=layers)


def select_bands(pred: Prediction, thresholds: Sequence[float]) -> None:
    """Set ``pred.bands`` (1-based) for ``thresholds``, and those of its probability layer."""
    wanted = [float(t) for t in thresholds]
    what = f"The prediction '{pred.method}' ({pred.path.name})"
    pred.bands = match_bands(what, pred.band_thresholds, "gap <= X m", wanted)
    pred.layers.select(wanted)


@dataclass
class Reference:
    """Reference heights of a site: a CHM, or a DSM and a DTM (CHM = DSM - DTM)."""

    chm: Path | None = None
    dsm: Path | None = None
    dtm: Path | None = None
    crs: str | None = None

    def paths(self) -> list[tuple[str, Path]]:
        """``(what, path)`` of the files that make up the reference."""
        if self.chm is not None:
            return [("reference CHM", self.chm)]
        assert self.dsm is not None and self.dtm is not None
        return [("DSM", self.dsm), ("reference DTM", self.dtm)]

    def check(self) -> None:
        """Fail early (before any output is written) on missing or unreadable files."""
        for what, path in self.paths():
            info = read_info(path, what=what)
            if info.crs is None and self.crs:
                info = info.with_crs(self.crs)
            if info.crs is not None:
                check_projected(info, what=what)

    def heights(
        self, grid: RasterInfo, resampling: str = "average"
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Reference CHM on ``grid`` as ``(values, valid)``; NoDataError when nothing overlaps."""
        parts = []
        for what, path in self.paths():
            crs = self.crs if read_info(path, what=what).crs is None else None
            parts.append(read_aligned(path, grid, resampling=resampling, crs=crs, what=what))
        if len(parts) == 1:
            chm, valid = parts[0]
        else:
            (dsm, v1), (dtm, v2) = parts
            valid = v1 & v2
            chm = np.where(valid, dsm - dtm, np.nan).astype(np.float32)
        if not valid.any():
            names = ", ".join(p.name for _, p in self.paths())
            raise NoDataError(
                f"The reference ({names}) has no valid pixel on the grid of {grid.path.name} "
                f"({grid.crs.to_string() if grid.crs else 'no CRS'}): they do not overlap.",
                "Check that the reference and the prediction cover the same area and that both "
                "carry the right CRS (a wrong CRS puts a raster somewhere else on Earth).",
            )
        return chm, valid


def reference_labels(
    reference: Reference,
    grid: RasterInfo,
    thresholds: Sequence[float],
    min_area_m2: float | None,
    max_area_m2: float | None,
    resampling: str = "average",
    nested: bool = True,
) -> NDArray[np.uint8]:
    """Reference gap labels ``uint8 [T, H, W]`` on ``grid`` by the preprocessing rule."""
    from engine.data.labels import gap_masks

    chm, valid = reference.heights(grid, resampling)
    return gap_masks(
        chm, valid, list(thresholds), grid.pixel_area, min_area_m2, max_area_m2, nested=nested
    )


@dataclass
class Settings:
    """How a prediction is compared with its reference."""

    cell_size_m: float = 20.0
    size_edges: tuple[float, ...] = DEFAULT_SIZE_EDGES
    min_iou: float = 0.5
    pred_min_area_m2: float | None = None
    pred_max_area_m2: float | None = None
    strip_rows: int = 512
    preview_index: int | None = None
    preview_max_px: int = 800
    probability_bins: int = DEFAULT_BINS
    height_edges: tuple[float, ...] = DEFAULT_HEIGHT_EDGES
    resampling: str = "average"


@dataclass
class Preview:
    """Downsampled TP/FP/FN/TN map of one threshold for the report figures."""

    threshold: float
    classes: NDArray[np.uint8]
    pixel_size: float


def _as_mask(
    values: NDArray[np.float32], valid: NDArray[np.bool_], pred: Prediction, band: int
) -> NDArray[np.uint8]:
    bad = valid & (values != 0) & (values != 1)
    if bad.any():
        example = float(values[bad][0])
        raise InputError(
            f"Band {band} of the prediction '{pred.method}' ({pred.path.name}) holds values other "
            f"than 0 (canopy), 1 (gap) and nodata, e.g. {example:g}.",
            "Give the gap-mask GeoTIFF written by inference (uint8, 255 = nodata), not a "
            "probability or height raster.",
        )
    out = np.full(values.shape, NODATA, dtype=np.uint8)
    out[valid] = values[valid].astype(np.uint8)
    return out


def evaluate_prediction(
    pred: Prediction,
    thresholds: Sequence[float],
    ref: NDArray[np.uint8],
    settings: Settings,
    reporter: Reporter | None = None,
) -> tuple[MethodResult, Preview | None]:
    """Compare ``pred`` (bands already selected) with reference labels on its grid."""
    reporter = reporter or NullReporter()
    info = pred.info
    t_list = [float(t) for t in thresholds]
    n_t = len(t_list)
    h, w = info.shape
    if ref.shape != (n_t, h, w):
        raise ValueError(f"Reference labels {ref.shape} do not match the prediction {(n_t, h, w)}.")
    cell_px = max(1, round(settings.cell_size_m / info.pixel_size))
    strip = max(cell_px, (max(settings.strip_rows, cell_px) // cell_px) * cell_px)
    full = np.empty((n_t, h, w), dtype=np.uint8)
    conf = [ConfusionCounts() for _ in t_list]
    cells = [CellStats() for _ in t_list]
    nest = NestingCounts(tuple(sorted(t_list)))
    with RasterReader(pred.path, what=f"prediction '{pred.method}'", crs=pred.assign_crs) as reader:
        for r0 in range(0, h, strip):
            rows = min(strip, h - r0)
            stack = np.empty((n_t, rows, w), dtype=np.uint8)
            for k, band in enumerate(pred.bands):
                values, valid = reader.read_window(r0, 0, rows, w, band)
                stack[k] = _as_mask(values, valid, pred, band)
            full[:, r0 : r0 + rows] = stack
            win_ref = ref[:, r0 : r0 + rows]
            for k in range(n_t):
                conf[k] = conf[k] + confusion_counts(stack[k], win_ref[k])
                cells[k] = cells[k] + gap_fraction_stats(stack[k], win_ref[k], cell_px)
            nest = nest + nesting_counts(stack, t_list)
            reporter.progress(0.5 * (r0 + rows) / h, f"compare {pred.method}")
    if not (full != NODATA).any():
        reporter.log(
            f"The prediction '{pred.method}' ({pred.path.name}) holds only nodata.", "warning"
        )
    bands = []
    for k, t in enumerate(t_list):
        obj = object_counts(
            full[k],
            ref[k],
            info.pixel_area,
            settings.size_edges,
            settings.min_iou,
            settings.pred_min_area_m2,
            settings.pred_max_area_m2,
        )
        bands.append(BandResult(t, conf[k], obj.counts, cells[k], obj.pred_areas, obj.ref_areas))
        reporter.progress(0.5 + 0.5 * (k + 1) / n_t, f"gap objects {pred.method}")
    preview = None
    if settings.preview_index is not None:
        k = settings.preview_index
        classes = block_mode(error_classes(full[k], ref[k]), settings.preview_max_px)
        scale = max(h, w) / max(classes.shape)
        preview = Preview(t_list[k], classes, info.pixel_size * scale)
    result = MethodResult(pred.method, t_list, bands, nest, [str(pred.path)])
    return result, preview
