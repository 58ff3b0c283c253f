"""Run the benchmark suite: ``python -m bench.run [--quick] [--only NAME ...] [--out FILE]``.

Writes ``FILE`` (default ``bench/results.json``) and a Markdown table next to it
(``results.md``), after every benchmark (a long run that is stopped keeps what it measured).
Exit status: 0 when every selected benchmark ran (targets are reported, never gated on), 1
when one failed (its error is in the results), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    FULL,
    QUICK,
    SCHEMA,
    SCHEMA_VERSION,
    Context,
    compute_devices,
    log,
    machine,
)
from bench.report import markdown

BENCHMARKS = {
    "inference": "bench.inference",
    "memory": "bench.memory",
    "seams": "bench.seams",
    "roofline": "bench.roofline",
    "onnx": "bench.onnx_runtime",
    "training": "bench.training",
    "preprocessing": "bench.preprocessing",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 run each (tests, smoke)")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=sorted(BENCHMARKS),
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "results.json",
        help="results file (default bench/results.json); Markdown goes next to it",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=BENCH_DIR / "work",
        help="cache of generated workloads (default bench/work, git-ignored)",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        metavar="PX",
        help="raster sizes of the inference/memory benchmarks (override the mode's)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other benchmarks already in --out (with --only)",
    )
    p.add_argument("--cpu-only", action="store_true", help="do not use a CUDA GPU")
    return p.parse_args(argv)


def _write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, allow_nan=True, default=str), encoding="utf-8")
    os.replace(tmp, path)
    md = path.with_suffix(".md")
    md_tmp = md.with_name(md.name + ".tmp")
    md_tmp.write_text(markdown(results), encoding="utf-8")
    os.replace(md_tmp, md)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = QUICK if args.quick else FULL
    if args.sizes:
        sizes = sorted(set(args.sizes))
        settings = dataclasses.replace(
            settings,
            infer_sizes=sizes,
            repeats={s: settings.repeats.get(s, 1) for s in sizes},
        )
    command = "python -m bench.run" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    names = args.only or list(BENCHMARKS)
    devices = ["cpu"] if args.cpu_only else compute_devices()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(quick=args.quick, work=work, command=command, settings=settings, devices=devices)
    t_start = time.perf_counter()
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "mode": "quick" if args.quick else "full",
        "settings": dataclasses.asdict(settings),
        "machine": machine(),
        "benchmarks": {},
        "targets": [],
        "seconds": 0.0,
    }
    if args.merge and args.out.is_file():
        old = json.loads(args.out.read_text(encoding="utf-8"))
        if old.get("schema") == SCHEMA:
            results["benchmarks"] = {
                k: v for k, v in old.get("benchmarks", {}).items() if k not in names
            }
            for bench in results["benchmarks"].values():
                bench.setdefault("machine", old.get("machine"))
                bench.setdefault("created", old.get("created"))
    failed = []
    for name in names:
        log(f"== {name} ==")
        t0 = time.perf_counter()
        entry: dict[str, Any] = {
            "command": ctx.bench_command(name),
            "status": "ok",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            module = importlib.import_module(BENCHMARKS[name])
            out = module.run(ctx)
            entry["status"] = out.pop("status", "ok")
            entry.update(out)
        except Exception as exc:
            failed.append(name)
            entry.update(
                status="error",
                error="".join(traceback.format_exception_only(type(exc), exc)).strip(),
                traceback=traceback.format_exc()[-4000:],
                figures=[],
                targets=[],
                notes=[],
            )
            log(f"{name} failed: {exc}")
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        results["benchmarks"][name] = entry
        results["targets"] = [
            t for b in results["benchmarks"].values() for t in b.get("targets", [])
        ]
        results["seconds"] = round(time.perf_counter() - t_start, 1)
        _write(args.out, results)
        log(f"{name}: {entry['status']} in {entry['seconds']} s")
    log(f"results: {args.out} and {args.out.with_suffix('.md')}")
    for t in results["targets"]:
        verdict = "-" if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
        log(
            f"target {t['name']}: {t['value']} (limit {t['limit']}) {verdict}"
            + (" [informational]" if t["informational"] else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
