"""Evaluation of gap masks against a reference: confusion counts, metrics and reports.

Array-level maths, one concept per module (no file access):

- :mod:`.confusion`    pixel confusion counts (summed, never averaged) and pixel metrics
- :mod:`.objects`      8-connected gap objects, one-to-one matching, per size class
- :mod:`.powerlaw`     gap-size-frequency exponent lambda (maximum likelihood)
- :mod:`.gapfraction`  gap fraction per grid cell: R², RMSE, bias
- :mod:`.nesting`      nesting violations across thresholds
- :mod:`.probability`  gap-probability histograms: PR-AUC, Brier score, IoU-optimal cut
- :mod:`.heights`      canopy height error sums by reference height class: MAE, RMSE, bias
- :mod:`.results`      per band / per method results and their aggregation over sites

Orchestration: :mod:`.config` (``EvaluateConfig``), :mod:`.command` (``run_evaluate``, a
pipeline of steps), :mod:`.generate` (models and classical baseline run on each site),
:mod:`.compare` (each prediction vs the site's reference), :mod:`.site` (reads windows through
``engine.io.raster``), :mod:`.layers` (probability and canopy height rasters, streamed),
:mod:`.naming` (file names in the report folder). Report: :mod:`.metrics_file` (metrics.json,
CSV), :mod:`.report` (writers, text blocks), :mod:`.report_text`, :mod:`.report_layers`,
:mod:`.report_figures` and :mod:`.figures`.
"""

from engine.evaluation.confusion import ConfusionCounts, confusion_counts, pixel_metrics
from engine.evaluation.gapfraction import CellStats, cell_fractions, gap_fraction_stats
from engine.evaluation.nesting import NestingCounts, nesting_counts
from engine.evaluation.objects import ObjectCounts, label_gaps, match_objects, object_counts
from engine.evaluation.powerlaw import PowerLawFit, fit_power_law

__all__ = [
    "CellStats",
    "ConfusionCounts",
    "NestingCounts",
    "ObjectCounts",
    "PowerLawFit",
    "cell_fractions",
    "confusion_counts",
    "fit_power_law",
    "gap_fraction_stats",
    "label_gaps",
    "match_objects",
    "nesting_counts",
    "object_counts",
    "pixel_metrics",
]
