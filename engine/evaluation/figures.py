"""Report figures (matplotlib, Agg canvas, no pyplot state): PNG bytes written atomically.

Each function takes results already computed (no raster access) and writes one PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluation.confusion import NODATA, pixel_metrics
from engine.evaluation.preview import CLASS_NAMES, FN, FP, TN, TP
from engine.evaluation.results import MethodResult, threshold_key
from engine.evaluation.site import Preview
from engine.io.files import atomic_write_bytes

ERROR_COLOURS = {TN: "#d9d9d9", FP: "#d7301f", FN: "#2b8cbe", TP: "#238b45"}
NODATA_COLOUR = "#ffffff"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def error_map(preview: Preview, title: str, path: Path) -> Path:
    """Reference, prediction and TP/FP/FN/TN error map side by side."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    c = preview.classes
    nod = c == NODATA
    ref_gap = np.where(nod, 2, ((c == FN) | (c == TP)).astype(np.uint8))
    pred_gap = np.where(nod, 2, ((c == FP) | (c == TP)).astype(np.uint8))
    err = np.where(nod, 4, c)
    binary = ListedColormap(["#1a9641", "#fdae61", NODATA_COLOUR])
    errors = ListedColormap([ERROR_COLOURS[k] for k in (TN, FP, FN, TP)] + [NODATA_COLOUR])
    h, w = c.shape
    extent = (0, w * preview.pixel_size, 0, h * preview.pixel_size)
    fig = _figure(13, 4.8)
    axes = fig.subplots(1, 3)
    for ax, data, cmap, vmax, name in (
        (axes[0], ref_gap, binary, 2, "reference"),
        (axes[1], pred_gap, binary, 2, "prediction"),
        (axes[2], err, errors, 4, "errors"),
    ):
        ax.imshow(data, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest", extent=extent)
        ax.set_title(name)
        ax.set_xlabel("m")
    axes[0].legend(
        handles=[Patch(color="#fdae61", label="gap"), Patch(color="#1a9641", label="canopy")],
        loc="lower left",
        fontsize=7,
    )
    axes[2].legend(
        handles=[Patch(color=ERROR_COLOURS[k], label=CLASS_NAMES[k]) for k in (TP, FP, FN, TN)],
        loc="lower left",
        fontsize=7,
    )
    fig.suptitle(title)
    return _save(fig, path)


def _metric(result: MethodResult, name: str) -> list[float]:
    out = []
    for band in result.bands:
        if name == "object_f1":
            v = band.objects.metrics()["all"]["f1"]
        else:
            v = pixel_metrics(band.confusion)[name]
        out.append(np.nan if v is None else float(v))
    return out


def metric_curves(results: Sequence[MethodResult], title: str, path: Path) -> Path:
    """IoU, F1, kappa and object F1 against the threshold, one line per method."""
    fig = _figure(10, 7)
    axes = fig.subplots(2, 2).ravel()
    for ax, (name, label) in zip(
        axes,
        (("iou", "IoU"), ("f1", "F1"), ("kappa", "Cohen's kappa"), ("object_f1", "object F1")),
        strict=True,
    ):
        for res in results:
            ax.plot(res.thresholds, _metric(res, name), marker="o", label=res.method)
        ax.set_xlabel("height threshold (m)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.05 if name == "kappa" else -0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def confusion_matrices(result: MethodResult, title: str, path: Path) -> Path:
    """Row-normalised 2x2 confusion matrix per threshold (counts annotated)."""
    n = len(result.bands)
    fig = _figure(3.2 * n, 3.4)
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, band in zip(axes, result.bands, strict=True):
        c = band.confusion
        counts = np.array([[c.tn, c.fp], [c.fn, c.tp]], dtype=np.float64)
        rows = counts.sum(axis=1, keepdims=True)
        norm = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}\n{int(counts[i, j])}",
                    ha="center",
                    va="center",
                    color="white" if norm[i, j] > 0.5 else "black",
                    fontsize=8,
                )
        ax.set_xticks([0, 1], ["canopy", "gap"])
        ax.set_yticks([0, 1], ["canopy", "gap"])
        ax.set_xlabel("predicted")
        if ax is axes[0]:
            ax.set_ylabel("reference")
        ax.set_title(f"<= {threshold_key(band.threshold)} m")
    fig.suptitle(title)
    return _save(fig, path)


def _log_hist(
    areas: NDArray[np.float64], edges: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    counts, _ = np.histogram(areas, bins=edges)
    centres = np.sqrt(edges[:-1] * edges[1:])
    density = counts / np.diff(edges)
    keep = counts > 0
    return centres[keep], density[keep]


def size_distributions(results: Sequence[MethodResult], title: str, path: Path) -> Path:
    """Gap-size frequency (gaps per m² of size, log bins) on log-log axes, per threshold."""
    thresholds = results[0].thresholds
    n = len(thresholds)
    fig = _figure(4.2 * n, 3.8)
    axes = np.atleast_1d(fig.subplots(1, n))
    for k, (ax, t) in enumerate(zip(axes, thresholds, strict=True)):
        ref = results[0].bands[k].ref_areas
        everything = np.concatenate([ref, *[r.bands[k].pred_areas for r in results]])
        everything = everything[everything > 0]
        if everything.size == 0:
            ax.text(0.5, 0.5, "no gap", ha="center", va="center", transform=ax.transAxes)
        else:
            lo, hi = everything.min(), everything.max()
            edges = (
                np.geomspace(lo * 0.999, hi * 1.001 + 1e-9, 16)
                if hi > lo
                else np.array([lo * 0.9, lo * 1.1])
            )
            for res in results:
                x, y = _log_hist(res.bands[k].pred_areas, edges)
                if x.size:
                    ax.loglog(x, y, marker=".", label=res.method)
            x, y = _log_hist(ref, edges)
            ax.loglog(x, y, "k--o", label="reference", markersize=6, mfc="none", zorder=5)
        ax.set_xlabel("gap area (m²)")
        if k == 0:
            ax.set_ylabel("gaps per m² of size")
        ax.set_title(f"<= {threshold_key(t)} m")
        ax.grid(alpha=0.3, which="both")
        if k == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
