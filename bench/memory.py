"""Peak RSS versus raster size: streaming must keep memory flat.

Every inference run happens in a fresh process (:mod:`bench.child`), which reports its own
peak RSS (Linux ``VmHWM``, read right after the engine command), the RSS before the command
(interpreter, torch, GDAL and the command's modules imported) and the peak during the command
alone. The runs are shared with :mod:`bench.inference` when both run in one session.

Target: peak RSS at the largest raster (16k x 16k) at most 1.10 x that at the next size
(4k x 4k), for the model (default precision) and for the classical method.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench import inference
from bench.common import Context, figure, target

NAME = "memory"
GROWTH_LIMIT = 1.10
MB = 1e6


def run(ctx: Context) -> dict[str, Any]:
    figures: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    small, large = ctx.settings.memory_pair
    for method in ("model", "classical"):
        peaks = {}
        for size in sorted({small, large}):
            repeats = 1 if size == large else min(2, ctx.settings.repeats.get(size, 1))
            reports = inference.runs(
                ctx, method, size, "cpu", "auto" if method == "model" else "fp32", repeats
            )
            peak = [r["peak_rss_bytes"] / MB for r in reports]
            peaks[size] = statistics.median(peak)
            cmd = ctx.bench_command(NAME)
            figures.append(
                figure(
                    f"{method}.cpu.{size}.peak_rss",
                    "MB",
                    peak,
                    better="lower",
                    command=cmd,
                    note="whole process, fresh per run",
                    size=size,
                    engine_command=reports[0]["engine_command"],
                    raster_mb_float32=round(size * size * 4 / MB, 1),
                    source=reports[0].get("rss_source"),
                )
            )
            if all(r.get("command_peak_rss_bytes") for r in reports):
                figures.append(
                    figure(
                        f"{method}.cpu.{size}.command_rss_growth",
                        "MB",
                        [
                            (r["command_peak_rss_bytes"] - r["rss_before_bytes"]) / MB
                            for r in reports
                        ],
                        better="lower",
                        command=cmd,
                        note="peak RSS during the command minus RSS before it",
                        size=size,
                    )
                )
            if all(r.get("rss_before_bytes") for r in reports):
                figures.append(
                    figure(
                        f"{method}.cpu.{size}.rss_before_command",
                        "MB",
                        [r["rss_before_bytes"] / MB for r in reports],
                        better="lower",
                        command=cmd,
                        note="after imports (fixed cost)",
                        size=size,
                    )
                )
        ratio = peaks[large] / peaks[small]
        figures.append(
            figure(
                f"{method}.cpu.peak_rss_growth_{small}_to_{large}",
                "x",
                ratio,
                better="lower",
                command=ctx.bench_command(NAME),
                note=f"raster area grows {(large / small) ** 2:g}x",
                small=small,
                large=large,
            )
        )
        targets.append(
            target(
                f"{method}.cpu.peak_rss_growth",
                ratio,
                GROWTH_LIMIT,
                f"peak RSS at {large}^2 px <= {GROWTH_LIMIT} x peak RSS at {small}^2 px",
                informational=ctx.quick,
            )
        )
    return {"figures": figures, "targets": targets, "notes": []}
