"""Error of a predicted canopy height raster against the reference CHM, by height class.

Sums only (count, sum of errors, of absolute errors, of squared errors per reference height
class), so windows and sites add up exactly with ``+`` and MAE, RMSE and bias come once from the
pooled sums. Error = predicted - reference, so a positive bias means the prediction is too high.
Classes are by *reference* height: with edges ``(2, 5)`` they are ``< 2``, ``2-5`` (2 <= h < 5)
and ``>= 5`` m; negative reference heights (DSM below DTM) fall in the lowest class.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_HEIGHT_EDGES = (2.0, 5.0, 10.0, 15.0, 20.0)


def class_names(edges: tuple[float, ...]) -> list[str]:
    """Names of the reference height classes: ``< 2``, ``2-5``, ..., ``>= 20``."""
    if not edges:
        return ["all"]
    inner = [f"{a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
    return [f"< {edges[0]:g}", *inner, f">= {edges[-1]:g}"]


@dataclass
class HeightErrors:
    """Per-class sums of height errors; add instances to pool windows or sites."""

    edges: tuple[float, ...]
    n: NDArray[np.int64]
    sum_error: NDArray[np.float64]
    sum_abs: NDArray[np.float64]
    sum_sq: NDArray[np.float64]

    @classmethod
    def empty(cls, edges: tuple[float, ...] = DEFAULT_HEIGHT_EDGES) -> HeightErrors:
        """No pixel yet."""
        k = len(edges) + 1
        return cls(tuple(edges), np.zeros(k, np.int64), *(np.zeros(k) for _ in range(3)))

    def __add__(self, other: HeightErrors) -> HeightErrors:
        if self.edges != other.edges:
            raise ValueError("Cannot add height errors of different height classes.")
        return HeightErrors(
            self.edges,
            self.n + other.n,
            self.sum_error + other.sum_error,
            self.sum_abs + other.sum_abs,
            self.sum_sq + other.sum_sq,
        )

    def metrics(self) -> dict[str, Any]:
        """JSON-ready MAE, RMSE and bias overall and per reference height class."""
        by_class = [
            {
                "class_m": name,
                **_summary(self.n[k], self.sum_error[k], self.sum_abs[k], self.sum_sq[k]),
            }
            for k, name in enumerate(class_names(self.edges))
        ]
        overall = _summary(
            self.n.sum(), self.sum_error.sum(), self.sum_abs.sum(), self.sum_sq.sum()
        )
        return {"class_edges_m": list(self.edges), "overall": overall, "by_class": by_class}


def _summary(n: Any, sum_error: Any, sum_abs: Any, sum_sq: Any) -> dict[str, Any]:
    count = int(n)
    if count == 0:
        return {"pixels": 0, "mae": None, "rmse": None, "bias": None}
    return {
        "pixels": count,
        "mae": float(sum_abs) / count,
        "rmse": float(np.sqrt(float(sum_sq) / count)),
        "bias": float(sum_error) / count,
    }


def height_errors(
    pred: NDArray[np.floating[Any]],
    ref: NDArray[np.floating[Any]],
    valid: NDArray[np.bool_],
    edges: tuple[float, ...] = DEFAULT_HEIGHT_EDGES,
) -> HeightErrors:
    """Sums of one window; pixels count where ``valid`` and both heights are finite."""
    if pred.shape != ref.shape or valid.shape != ref.shape:
        raise ValueError(f"Predicted heights {pred.shape} and reference {ref.shape} shapes differ.")
    ok = valid & np.isfinite(pred) & np.isfinite(ref)
    k = len(edges) + 1
    r = np.where(ok, ref, 0)
    cls = np.zeros(ref.shape, np.int32)
    for e in edges:  # class = number of edges <= reference height
        cls += r >= e
    cls[~ok] = k  # not counted
    cls = cls.ravel()
    err = np.where(ok, pred.astype(np.float64) - r, 0.0).ravel()
    sums = [np.bincount(cls, weights=w, minlength=k + 1)[:k] for w in (err, np.abs(err), err * err)]
    n = np.bincount(cls, minlength=k + 1)[:k]
    return HeightErrors(tuple(edges), n.astype(np.int64), *(s.astype(np.float64) for s in sums))
