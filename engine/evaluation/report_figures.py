"""The figures of the evaluation report, drawn into its ``figures/`` folder.

Pooled metric curves and gap-size distributions, a confusion-matrix figure per method and an
error map per site and method. Without matplotlib the report is written without figures and
a warning says how to install it.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import MissingDependencyError
from engine.evaluation.naming import slug
from engine.evaluation.results import MethodResult, threshold_key
from engine.evaluation.site import Preview
from engine.events import Reporter


def draw_figures(
    tmp: Path,
    per_site: dict[str, dict[str, MethodResult]],
    totals: dict[str, MethodResult],
    previews: dict[tuple[str, str], Preview],
    reporter: Reporter,
) -> dict[str, str]:
    """Draw the PNGs; title -> path relative to the report folder. Skipped without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        reporter.log(
            str(
                MissingDependencyError(
                    "Figures need matplotlib, which is not installed.",
                    "python -m pip install matplotlib",
                )
            ),
            "warning",
        )
        return {}
    from engine.evaluation import figures as fig

    out: dict[str, str] = {}
    folder = tmp / "figures"
    results = list(totals.values())
    n_sites = len(per_site)
    scope = "all sites" if n_sites > 1 else next(iter(per_site))
    out[f"Metrics vs threshold ({scope})"] = "figures/metrics_vs_threshold.png"
    fig.metric_curves(
        results, f"Metrics vs height threshold ({scope})", folder / "metrics_vs_threshold.png"
    )
    out[f"Gap-size distributions ({scope})"] = "figures/gap_sizes.png"
    fig.size_distributions(results, f"Gap-size frequency ({scope})", folder / "gap_sizes.png")
    for m, r in totals.items():
        rel = f"figures/confusion_{slug(m)}.png"
        fig.confusion_matrices(r, f"Confusion matrices: {m} ({scope})", tmp / rel)
        out[f"Confusion matrices: {m}"] = rel
    for (site, m), pv in previews.items():
        rel = f"figures/errors_{slug(site)}_{slug(m)}.png"
        fig.error_map(pv, f"{site}: {m}, gap <= {threshold_key(pv.threshold)} m", tmp / rel)
        out[f"Error map: {site}, {m} (<= {threshold_key(pv.threshold)} m)"] = rel
        reporter.check_cancelled()
    return out
