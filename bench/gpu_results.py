"""Record a GPU-check report in the project's figures: ``python -m bench.gpu_results FILE``.

Merges the report of ``bench/gpu_check.sh`` (:mod:`bench.gpu_check`) into

* ``bench/results.json``: benchmark ``gpu_check`` (figures in the suite's format, with the card
  named in every figure's parameters and in the entry's ``machine``), its targets added to the
  file's targets; the other benchmarks are kept;
* ``bench/results.md``: re-rendered from it (:func:`bench.report.markdown`);
* ``README.md``: the block between ``<!-- gpu-check:start -->`` and ``<!-- gpu-check:end -->``
  in the Benchmarks section, a table naming the card.

A report made without CUDA is refused (its figures are no GPU figures) unless ``--allow-cpu``
is given, for tests on copies of these files; its block then says it is a CPU run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, ROOT, SCHEMA, SCHEMA_VERSION, figure
from bench.gpu_summary import summarise
from bench.report import markdown

START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"
NAME = "gpu_check"
COMMAND = "bash bench/gpu_check.sh"
UNITS = {
    "mpx_s": "Mpx/s",
    "gpx_per_min": "Gpx/min",
    "_mb": "MB",
    "_pct": "%",
    "tiles_s": "tiles/s",
    "size_px": "px",
    "batch_size": "tiles",
    "reader_threads": "threads",
}


def _unit(key: str) -> str:
    return next((u for suffix, u in UNITS.items() if key.endswith(suffix)), "x")


def bench_entry(report: dict[str, Any]) -> dict[str, Any]:
    """The report as a ``results.json`` benchmark entry (figures named ``gpu.<key>``)."""
    summary = summarise(report)
    fig = summary["figures"]
    env = report.get("environment") or {}
    params = {"device": summary["device"], "size_px": fig.get("size_px"), "mode": report["mode"]}
    figures = [
        figure(f"gpu.{key}", _unit(key), value, command=COMMAND, **params)
        for key, value in fig.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    notes = [f"device: {summary['device']}", *summary["lines"][1:]]
    if report.get("note"):
        notes.insert(0, report["note"])
    return {
        "command": COMMAND,
        "status": "ok"
        if all(s["status"] != "error" for s in report["stages"].values())
        else "error",
        "created": report.get("created"),
        "seconds": report.get("seconds", 0.0),
        "machine": {**(env.get("machine") or {}), "gpu": env.get("gpu")},
        "figures": figures,
        "targets": [{**t, "name": f"gpu.{t['name']}"} for t in summary["targets"]],
        "notes": notes,
    }


def merge_results(report: dict[str, Any], path: Path) -> dict[str, Any]:
    """``path`` (a results.json, created if missing) with the ``gpu_check`` entry replaced."""
    data: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "benchmarks": {}}
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("benchmarks", {})[NAME] = bench_entry(report)
    data["targets"] = [t for b in data["benchmarks"].values() for t in b.get("targets", [])]
    return data


def readme_block(report: dict[str, Any]) -> str:
    """The README's GPU figures: a table naming the card, from the report's summary."""
    summary = summarise(report)
    fig, env = summary["figures"], report.get("environment") or {}
    gpu, m = env.get("gpu") or {}, env.get("machine") or {}
    what = f"**{summary['device']}**" + (f" ({gpu.get('memory_gb')} GB)" if gpu else "")
    kind = "GPU figures" if report.get("cuda") else "Figures of a run without CUDA"
    head = (
        f"{kind}: {str(report.get('created', ''))[:10]}, {what}, "
        f"{m.get('logical_cores')} CPU cores, torch {m.get('torch')} "
        f"(CUDA {m.get('cuda_version')}), from `{COMMAND}` ({report.get('seconds')} s)."
    )
    if not report.get("cuda"):
        head = f"{report.get('note', 'CPU run.')} {head}"
    size = fig.get("size_px")
    rows = [
        ("end to end, bf16 / fp32", _pair(fig, "e2e_bf16_mpx_s", "e2e_fp32_mpx_s", "Mpx/s")),
        ("I/O-only pass (no model)", _pair(fig, "io_only_mpx_s", None, "Mpx/s")),
        ("end to end / I/O only (target >= 0.7)", fig.get("e2e_over_io_only")),
        ("end to end, Gpx per minute (target > 1)", fig.get("e2e_gpx_per_min")),
        ("time split of end to end bf16 (s)", _split(fig.get("e2e_breakdown_s"))),
        ("GPU memory peak", _pair(fig, "gpu_memory_peak_mb", None, "MB")),
        (
            "bf16 vs fp32 masks, lowest agreement",
            _pair(fig, "bf16_vs_fp32_mask_agreement_min_pct", None, "%"),
        ),
        ("training tiles/s", f"{fig.get('train_tiles_s')} ({fig.get('train_setup')})"),
        ("CUDA tests", fig.get("cuda_tests")),
    ]
    lines = [head, "", f"| figure ({size}² px raster) | value |", "|---|---|"]
    lines += [f"| {k} | {'-' if v is None else v} |" for k, v in rows]
    return "\n".join([START, *lines, END])


def _pair(fig: dict[str, Any], a: str, b: str | None, unit: str) -> str | None:
    if a not in fig:
        return None
    return f"{fig[a]} / {fig[b]} {unit}" if b and b in fig else f"{fig[a]} {unit}"


def _split(parts: dict[str, Any] | None) -> str | None:
    return ", ".join(f"{k[:-2]} {v}" for k, v in parts.items()) if parts else None


def merge_readme(text: str, block: str) -> str:
    """``text`` with the block between the markers replaced (added at the end of the
    Benchmarks section when the markers are missing)."""
    if START in text and END in text:
        return text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    at = text.find("\n## ", text.find("## Benchmarks") + 1)
    at = len(text) if at < 0 else at + 1
    return text[:at] + block + "\n\n" + text[at:]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.gpu_results", description=__doc__.split("\n")[0]
    )
    p.add_argument("report", type=Path, help="gpu_check.json from bench/gpu_check.sh")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "results.json")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--allow-cpu", action="store_true", help="accept a report made without CUDA")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    if not report.get("cuda") and not args.allow_cpu:
        print(
            f"{args.report} was made without CUDA: its figures are no GPU figures.", file=sys.stderr
        )
        return 2
    data = merge_results(report, args.results)
    _write(args.results, json.dumps(data, indent=1, default=str))
    _write(args.results.with_suffix(".md"), markdown(data))
    _write(args.readme, merge_readme(args.readme.read_text(encoding="utf-8"), readme_block(report)))
    print(f"merged {summarise(report)['device']} figures into {args.results} and {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
