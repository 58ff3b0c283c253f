"""The frame of a run over one or several DSMs, shared by ``engine infer`` and ``engine classical``.

Both commands name their outputs (:func:`~engine.inference.naming.output_names`), then
:func:`run_batch` hands each DSM to the command, which writes its outputs through
:func:`engine.inference.pipeline.write_outputs`, all inside one
:class:`~engine.inference.staging.Staging`: the files appear only when the whole run
succeeded (rank 0 renames them), and none is left after an error or a cancel.
:func:`raster_result` and :func:`batch_result` build the command's result from the same keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.events import Reporter
from engine.inference.distributed import DistContext
from engine.inference.naming import OutputNames
from engine.inference.staging import Staging
from engine.io.grid import RasterInfo

WriteOne = Callable[[int, OutputNames, Staging, Reporter], dict[str, Any]]
"""Writes the outputs of DSM ``i`` (its names, the run's staging, its progress slice) and
returns its result."""


def run_batch(
    names: list[OutputNames], ctx: DistContext, write_one: WriteOne, reporter: Reporter, stage: str
) -> list[dict[str, Any]]:
    """Run ``write_one`` for every DSM in order, each on its slice of the progress (named
    ``stage``); commit every staged output at the end on rank 0, delete them all on any error;
    close ``ctx`` in any case. Returns the DSMs' results."""
    staging = Staging()
    results = []
    try:
        with staging.run(commit=ctx.rank == 0):
            for i, n in enumerate(names):
                sub = reporter.sub(i / len(names), (i + 1) / len(names), stage)
                results.append(write_one(i, n, staging, sub))
    finally:
        ctx.close()
    reporter.progress(1.0, "done")
    return results


def raster_result(names: OutputNames, grid: RasterInfo, probabilities: bool) -> dict[str, Any]:
    """The first keys of one DSM's result: ``dsm``, ``output``, ``probabilities`` (when the
    command has them), ``heights``, ``polygons`` (None when not written), ``width``,
    ``height``."""
    out: dict[str, Any] = {"dsm": str(names.dsm), "output": str(names.mask)}
    if probabilities:
        out["probabilities"] = str(names.probabilities) if names.probabilities else None
    out["heights"] = str(names.heights) if names.heights else None
    out["polygons"] = str(names.polygons) if names.polygons else None
    out["width"] = grid.width
    out["height"] = grid.height
    return out


def batch_result(
    results: list[dict[str, Any]], head: dict[str, Any], t_start: float, single: tuple[str, ...]
) -> dict[str, Any]:
    """The command's result: ``outputs`` (the masks), the ``head`` figures, ``seconds`` since
    ``t_start`` and ``rasters`` (the DSMs' results); with one DSM its ``single`` keys too."""
    out: dict[str, Any] = {
        "outputs": [r["output"] for r in results],
        **head,
        "seconds": round(time.perf_counter() - t_start, 3),
        "rasters": results,
    }
    if len(results) == 1:
        out.update({k: results[0][k] for k in single})
    return out
