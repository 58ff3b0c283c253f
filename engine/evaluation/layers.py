"""Float layers of a method: gap probabilities and predicted canopy heights.

A method's gap mask may come with a probability GeoTIFF (one band per threshold: float32 0..1
with NaN as nodata, or uint8 percent with 255 as nodata, as ``infer --probabilities`` writes)
and a canopy height GeoTIFF (one band, float32 metres, NaN as nodata). Both must lie on the
mask's grid. They are streamed in row strips: probabilities against the reference labels
(already on that grid, :mod:`.probability`), heights against the reference CHM read window by
window (:mod:`.heights`). Reading goes through :mod:`engine.io.raster` only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from engine.errors import InputError
from engine.evaluation.heights import HeightErrors, height_errors
from engine.evaluation.probability import ProbabilityCounts, probability_counts
from engine.evaluation.results import threshold_key
from engine.events import Reporter
from engine.io.grid import RasterInfo
from engine.io.raster import RasterReader, read_aligned, read_info

if TYPE_CHECKING:
    from engine.evaluation.results import MethodResult
    from engine.evaluation.site import Prediction, Reference, Settings

LAYER_OUTPUTS = ("probabilities", "heights")
"""Optional outputs that ``evaluate`` asks of its own runs when the command offers them."""

_PROB_BAND_RE = re.compile(r"<=?\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*m\b")


def match_bands(
    what: str, described: Sequence[float | None], form: str, wanted: Sequence[float]
) -> list[int]:
    """1-based bands of ``wanted`` thresholds in a file whose bands describe ``described``.

    ``what`` names the file in messages ("The prediction 'x' (x.tif)"), ``form`` the expected
    band description ("gap <= X m"). Undescribed bands are taken in order when they are as many
    as the thresholds; a clear InputError otherwise.
    """
    if any(d is None for d in described):
        if len(described) != len(wanted):
            raise InputError(
                f"{what} has {len(described)} band(s) without '{form}' descriptions, but "
                f"{len(wanted)} threshold(s) are evaluated "
                f"({', '.join(threshold_key(t) for t in wanted)} m).",
                "Give one band per threshold in the same order, or set 'thresholds' to match the "
                "file's bands (inference outputs describe their bands).",
            )
        return list(range(1, len(wanted) + 1))
    bands = []
    for t in wanted:
        hits = [
            i for i, d in enumerate(described) if d is not None and math.isclose(d, t, abs_tol=1e-6)
        ]
        if not hits:
            have = ", ".join(threshold_key(d) for d in described if d is not None)
            raise InputError(
                f"{what} has no band for the {threshold_key(t)} m threshold; its bands are "
                f"{have} m.",
                "Evaluate only thresholds the prediction has ('thresholds' option), or predict "
                "the missing threshold.",
            )
        bands.append(hits[0] + 1)
    return bands


def _probability_threshold(description: str | None) -> float | None:
    m = _PROB_BAND_RE.search(description or "")
    return float(m.group(1)) if m else None


@dataclass
class Layers:
    """The checked float layers of one method on one site (none by default)."""

    method: str = ""
    probabilities: RasterInfo | None = None
    probability_bands: list[int] = dataclasses.field(default_factory=list)
    heights: RasterInfo | None = None

    def select(self, thresholds: Sequence[float]) -> None:
        """Pick the probability band of every evaluated threshold (InputError when missing)."""
        info = self.probabilities
        if info is None:
            return
        described = [_probability_threshold(d) for d in info.band_descriptions]
        what = f"The probabilities of '{self.method}' ({info.path.name})"
        self.probability_bands = match_bands(what, described, "gap probability <= X m", thresholds)


def _on_grid(info: RasterInfo, grid: RasterInfo) -> bool:
    """Same size, transform and CRS; a missing CRS on one side takes the other's."""
    if info.crs is None:
        info = info.with_crs(grid.crs)
    elif grid.crs is None:
        grid = grid.with_crs(info.crs)
    return info.same_grid(grid)


def _open_layer(path: Path, grid: RasterInfo, what: str) -> RasterInfo:
    info = read_info(path, what=what)
    if not _on_grid(info, grid):
        raise InputError(
            f"The {what} ({info.path.name}, {info.width} x {info.height} px) is not on the grid "
            f"of its gap mask {grid.path.name} ({grid.width} x {grid.height} px).",
            "Give the layer written together with the mask (same run), or warp it onto the "
            "mask's grid (gdalwarp with the mask's extent, pixel size and CRS).",
        )
    return info


def open_layers(
    method: str, grid: RasterInfo, probabilities: Path | None, heights: Path | None
) -> Layers:
    """Check the layers of ``method`` (exist, on the mask's grid, right type); no pixels read."""
    layers = Layers(method)
    if probabilities is not None:
        info = _open_layer(Path(probabilities), grid, f"probabilities of '{method}'")
        if info.dtype not in ("float32", "float64", "uint8"):
            raise InputError(
                f"The probabilities of '{method}' ({info.path.name}) are {info.dtype}.",
                "Give the probability GeoTIFF written by 'infer --probabilities' (float32 0..1 "
                "or uint8 percent).",
            )
        layers.probabilities = info
    if heights is not None:
        info = _open_layer(Path(heights), grid, f"canopy heights of '{method}'")
        if info.count != 1 or not info.dtype.startswith("float"):
            raise InputError(
                f"The canopy heights of '{method}' ({info.path.name}) have {info.count} band(s) "
                f"of {info.dtype}; one float band of metres is expected.",
                "Give the height GeoTIFF written by 'infer --heights' (float32 metres).",
            )
        layers.heights = info
    return layers


def model_estimates_height(path: Path) -> bool:
    """True when the model file has a height head (``infer`` can write canopy heights)."""
    from engine.models.modelfile import load_model

    model, _ = load_model(path)
    return bool(getattr(model, "estimates_height", False))


def layer_requests(config_cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Extra parameters asking a command (``infer``, ``classical``) for the layers it offers.

    Files go next to ``params["output"]`` (``<stem>_probabilities.tif``, ``<stem>_heights.tif``).
    Canopy heights are asked only of a model (``params["model"]``) that estimates height: the
    classical methods' height layers are heights above their ground estimates (one band per
    threshold for the adaptive method), not a canopy height prediction.
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    model = params.get("model")
    if "heights" in names and (model is None or not model_estimates_height(Path(model))):
        names.discard("heights")
    output = Path(params["output"])
    out: dict[str, Any] = {
        k: str(output.with_name(f"{output.stem}_{k}.tif")) for k in LAYER_OUTPUTS if k in names
    }
    if "probabilities" in out and "probability_format" in names:
        out["probability_format"] = "float32"
    return out


def written_layers(requests: dict[str, Any]) -> dict[str, Path]:
    """The requested layers that the command did write."""
    return {
        k: Path(requests[k]) for k in LAYER_OUTPUTS if k in requests and Path(requests[k]).is_file()
    }


def _probability_window(
    reader: RasterReader, info: RasterInfo, r0: int, rows: int, band: int, method: str
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    values, valid = reader.read_window(r0, 0, rows, info.width, band)
    p = values.astype(np.float64)
    if info.dtype == "uint8":
        p /= 100.0
    bad = valid & ((p < 0) | (p > 1))
    if bad.any():
        raise InputError(
            f"Band {band} of the probabilities of '{method}' ({info.path.name}) holds values "
            f"outside 0..1{' (0..100 %)' if info.dtype == 'uint8' else ''}, e.g. "
            f"{float(values[bad][0]):g}.",
            "Give the probability GeoTIFF written by 'infer --probabilities', not heights or "
            "logits.",
        )
    return p, valid


def stream_probabilities(
    layers: Layers, labels: NDArray[np.uint8], bins: int, strip_rows: int, reporter: Reporter
) -> list[ProbabilityCounts]:
    """Histograms of every evaluated threshold, strip by strip, vs reference ``labels [T,H,W]``."""
    info = layers.probabilities
    assert info is not None and len(layers.probability_bands) == labels.shape[0]
    counts = [ProbabilityCounts.empty(bins) for _ in layers.probability_bands]
    with RasterReader(info.path, what=f"probabilities of '{layers.method}'") as reader:
        for r0 in range(0, info.height, strip_rows):
            rows = min(strip_rows, info.height - r0)
            for k, band in enumerate(layers.probability_bands):
                p, valid = _probability_window(reader, info, r0, rows, band, layers.method)
                counts[k] = counts[k] + probability_counts(
                    p, valid, labels[k, r0 : r0 + rows], bins
                )
            reporter.check_cancelled()
    return counts


class ReferenceWindows:
    """The reference CHM (a CHM, or DSM - DTM) on ``grid``, window by window.

    A file on the grid is read window by window; a file on another grid is resampled onto it
    once (``read_aligned``: resampling needs neighbours across window edges) and sliced.
    """

    def __init__(self, reference: Reference, grid: RasterInfo, resampling: str) -> None:
        self._sources: list[RasterReader | tuple[NDArray[np.float32], NDArray[np.bool_]]] = []
        self.width = grid.width
        try:
            for what, path in reference.paths():
                crs = reference.crs if read_info(path, what=what).crs is None else None
                reader = RasterReader(path, what=what, crs=crs)
                if _on_grid(reader.info, grid):
                    self._sources.append(reader)
                    continue
                reader.close()
                self._sources.append(read_aligned(path, grid, resampling, crs=crs, what=what))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ReferenceWindows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the files read window by window."""
        for src in self._sources:
            if isinstance(src, RasterReader):
                src.close()

    def window(self, r0: int, rows: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Reference heights and validity of rows ``r0 .. r0 + rows`` (full width)."""
        parts = [
            s.read_window(r0, 0, rows, self.width)
            if isinstance(s, RasterReader)
            else (s[0][r0 : r0 + rows], s[1][r0 : r0 + rows])
            for s in self._sources
        ]
        if len(parts) == 1:
            return parts[0]
        (dsm, v1), (dtm, v2) = parts
        valid = v1 & v2
        return np.where(valid, dsm - dtm, np.nan).astype(np.float32), valid


def stream_heights(
    layers: Layers, reference: Reference, settings: Settings, reporter: Reporter
) -> HeightErrors:
    """Height error sums of the predicted canopy heights vs the reference CHM, strip by strip."""
    info = layers.heights
    assert info is not None
    total = HeightErrors.empty(tuple(settings.height_edges))
    what = f"canopy heights of '{layers.method}'"
    with (
        ReferenceWindows(reference, info, settings.resampling) as ref,
        RasterReader(info.path, what=what) as reader,
    ):
        for r0 in range(0, info.height, settings.strip_rows):
            rows = min(settings.strip_rows, info.height - r0)
            pred, valid = reader.read_window(r0, 0, rows, info.width)
            chm, ref_valid = ref.window(r0, rows)
            total = total + height_errors(pred, chm, valid & ref_valid, total.edges)
            reporter.check_cancelled()
    return total


def add_layer_metrics(
    result: MethodResult,
    pred: Prediction,
    labels: NDArray[np.uint8],
    reference: Reference,
    settings: Settings,
    reporter: Reporter,
) -> None:
    """Add the probability histograms and height errors of ``pred``'s layers to ``result``."""
    layers = pred.layers
    if layers.probabilities is not None:
        counts = stream_probabilities(
            layers, labels, settings.probability_bins, settings.strip_rows, reporter
        )
        for band, c in zip(result.bands, counts, strict=True):
            band.probability = c
    if layers.heights is not None:
        result.heights = stream_heights(layers, reference, settings, reporter)
