"""Markdown summary of ``bench/results.json``: ``python -m bench.report [results.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.4g}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: machine, targets, one table of figures per benchmark."""
    m = results.get("machine", {})
    lines = [
        "# canopygaps benchmark results",
        "",
        f"- created: {results.get('created')} ({results.get('mode')} mode, "
        f"{results.get('seconds', 0):.0f} s)",
        f"- command: `{results.get('command')}`",
        f"- machine: {m.get('cpu_model')}, {m.get('logical_cores')} logical cores "
        f"({m.get('physical_cores')} physical), {m.get('memory_gb')} GB, torch threads "
        f"{m.get('torch_threads')}, native bf16: {m.get('cpu_native_bf16')}, "
        f"load average at start {m.get('load_average')}",
        f"- devices: {', '.join(m.get('devices', []))}",
        f"- versions: python {m.get('python')}, torch {m.get('torch')} "
        f"({m.get('torch_cpu_capability')}), onnxruntime {m.get('onnxruntime')}, numpy "
        f"{m.get('numpy')}, GDAL {m.get('gdal')}, rasterio {m.get('rasterio')}, engine "
        f"{m.get('engine')}",
        f"- git: {m.get('git', {}).get('commit')} (dirty: {m.get('git', {}).get('dirty')})",
        "",
        "Figures are medians of `runs` runs with their min-max spread; see results.json for "
        "samples, quartiles, parameters and the command of each figure.",
        "",
    ]
    targets = results.get("targets", [])
    if targets:
        lines += ["## Targets", "", "| target | value | limit | result |", "|---|---|---|---|"]
        for t in targets:
            verdict = "-" if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
            if t.get("informational"):
                verdict += " (informational: quick mode)"
            lines.append(
                f"| {t['description']} | {_num(t['value'])} | {_num(t['limit'])} | {verdict} |"
            )
        lines.append("")
    for name, bench in results.get("benchmarks", {}).items():
        lines += [f"## {name}", ""]
        lines.append(
            f"`{bench.get('command')}` - {bench.get('status')}, {bench.get('seconds', 0):.0f} s"
        )
        lines.append("")
        if bench.get("error"):
            lines += ["```", str(bench["error"]).strip(), "```", ""]
        for note in bench.get("notes", []):
            lines.append(f"- {note}")
        if bench.get("notes"):
            lines.append("")
        figs = bench.get("figures", [])
        if figs:
            lines += ["| figure | median | min - max | runs | unit |", "|---|---|---|---|---|"]
            for f in figs:
                spread = "-" if f["runs"] == 1 else f"{_num(f['min'])} - {_num(f['max'])}"
                label = f["name"] + (f" ({f['note']})" if f.get("note") else "")
                lines.append(
                    f"| {label} | {_num(f['median'])} | {spread} | {f['runs']} | {f['unit']} |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).with_name("results.json")
    results = json.loads(path.read_text(encoding="utf-8"))
    out = path.with_suffix(".md")
    out.write_text(markdown(results), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
