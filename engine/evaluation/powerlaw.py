"""Gap-size-frequency exponent lambda by maximum likelihood (ForestGapR ``GapSizeFDist``).

ForestGapR fits a power law ``p(x) ∝ x^(-lambda)`` to the gap areas ``x`` (m²). Two estimators:

``continuous`` (ForestGapR's default ``method = "Hanel_2017"``: ``poweRlaw::conpl`` with
``xmin = min(x)``, the same estimator as igraph's ``fit_power_law(implementation = "R.mle")``
for continuous data; Clauset, Shalizi & Newman 2009, eq. 3.1)::

    lambda = 1 + n / sum_i ln(x_i / xmin)          over the n areas x_i >= xmin
    standard error = (lambda - 1) / sqrt(n)

``discrete`` (ForestGapR's ``method = "Asner_2013"``: zeta distribution, ``xmin = 1`` there)::

    P(x) = x^(-lambda) / zeta(lambda, xmin)        x = xmin, xmin + 1, ...
    lambda = argmax_l [ -l * sum_i ln x_i - n ln zeta(l, xmin) ]   on 1.0001 <= l <= 20

where ``zeta(l, q) = sum_{k>=0} (k + q)^(-l)`` is the Hurwitz zeta function; the standard
error comes from the observed Fisher information (numerical second derivative). The discrete
form assumes integer sizes (areas in m² of 1 m pixels, as in ForestGapR's examples).

An undefined fit (fewer than 2 sizes, or all sizes equal to ``xmin``) gives ``lambda = None``
and a note, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

Method = Literal["continuous", "discrete"]
LAMBDA_BOUNDS = (1.0001, 20.0)


@dataclass
class PowerLawFit:
    """Result of :func:`fit_power_law`."""

    lambda_: float | None
    xmin: float | None
    n: int
    method: str
    stderr: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``lambda`` key)."""
        return {
            "lambda": self.lambda_,
            "stderr": self.stderr,
            "xmin": self.xmin,
            "n": self.n,
            "method": self.method,
            "note": self.note,
        }


def _discrete_loglik(lam: float, sum_log: float, n: int, xmin: float) -> float:
    from scipy.special import zeta

    return float(-lam * sum_log - n * math.log(zeta(lam, xmin)))


def fit_power_law(
    sizes: ArrayLike, xmin: float | None = None, method: Method = "continuous"
) -> PowerLawFit:
    """Maximum-likelihood power-law exponent of ``sizes`` (see the module docstring)."""
    x = np.asarray(sizes, dtype=np.float64).ravel()
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        return PowerLawFit(None, xmin, 0, method, note="no gap: lambda undefined")
    x_min = float(x.min()) if xmin is None else float(xmin)
    x = x[x >= x_min]
    n = int(x.size)
    if n < 2:
        return PowerLawFit(None, x_min, n, method, note="fewer than 2 gaps: lambda undefined")
    if method == "continuous":
        s = float(np.log(x / x_min).sum())
        if s <= 0:
            return PowerLawFit(
                None, x_min, n, method, note="all gaps have the same size: lambda undefined"
            )
        lam = 1.0 + n / s
        return PowerLawFit(lam, x_min, n, method, stderr=(lam - 1.0) / math.sqrt(n))
    if method == "discrete":
        from scipy.optimize import minimize_scalar

        sum_log = float(np.log(x).sum())
        res = minimize_scalar(
            lambda lam: -_discrete_loglik(lam, sum_log, n, x_min),
            bounds=LAMBDA_BOUNDS,
            method="bounded",
            options={"xatol": 1e-8},
        )
        lam = float(res.x)
        note = ""
        if min(abs(lam - LAMBDA_BOUNDS[0]), abs(lam - LAMBDA_BOUNDS[1])) < 1e-3:
            note = f"lambda at the search bound {LAMBDA_BOUNDS}"
        h = min(1e-4 * lam, (lam - 1.0) / 2)
        d2 = (
            _discrete_loglik(lam + h, sum_log, n, x_min)
            - 2 * _discrete_loglik(lam, sum_log, n, x_min)
            + _discrete_loglik(lam - h, sum_log, n, x_min)
        ) / (h * h)
        stderr = math.sqrt(-1.0 / d2) if d2 < 0 else None
        return PowerLawFit(lam, x_min, n, method, stderr=stderr, note=note)
    raise ValueError(f"Unknown power-law method {method!r}; valid: 'continuous', 'discrete'.")
