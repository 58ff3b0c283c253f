"""Command-line interface: ``canopygaps <command> [--config FILE] [--key value ...]``.

Every command's options are generated from its typed config dataclass, so the CLI, YAML
configs, the QGIS plugin and JSON requests share one set of names. Nested settings are
written with dots (``--optim.lr 0.001``); list values take commas (``--thresholds 2,5,10``),
except a path that exists with a comma in its name (``--dsm "plot 3,4/dsm.tif"``).

``canopygaps request --file REQ.json --jsonl`` runs a JSON request and streams JSON-lines
events on stdout: this is the protocol of the plugin's subprocess and Docker backends.

Exit codes: 0 success, 1 engine error (bad input, bad model...), 2 usage error, 130 cancelled.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from engine import __version__
from engine.api import COMMANDS, get_command, run, run_request
from engine.config.base import Config, apply_override, load_config
from engine.errors import Cancelled, ConfigError, EngineError
from engine.events import ConsoleReporter, JsonLinesReporter, Reporter, install_signal_cancel

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def _field_options(cls: type[Config], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted name, help, type) for every leaf field of a config class."""
    out: list[tuple[str, str, Any]] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and issubclass(tp, Config):
            out.extend(_field_options(tp, f"{prefix}{f.name}."))
        else:
            out.append((prefix + f.name, f.metadata.get("help", ""), tp))
    return out


def _parse_value(text: str, tp: Any) -> Any:
    """Parse a command-line string: YAML scalars, comma lists for list-typed fields.

    A list of paths is split at commas unless the whole text names an existing file or folder
    (a path with a comma in it); its items stay text (a file named ``2024`` is no number)."""
    import yaml

    is_list = "list" in str(tp) or "tuple" in str(tp)
    if is_list and not text.lstrip().startswith("["):
        if "Path" not in str(tp):
            return [yaml.safe_load(v) for v in text.split(",") if v.strip()]
        if Path(text).exists():
            single = get_origin(tp) in (Union, types.UnionType) and Path in get_args(tp)
            return text if single else [text]
        return [v.strip() for v in text.split(",") if v.strip()]
    value = yaml.safe_load(text)
    # Keep strings that YAML would turn into dates or other odd types as text.
    return value if isinstance(value, (int, float, bool, list, dict, type(None))) else text


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and one sub-parser per engine command."""
    parser = argparse.ArgumentParser(
        prog="canopygaps",
        description="Forest canopy gap maps at several height thresholds from DSMs.",
    )
    parser.add_argument("--version", action="version", version=f"canopygaps {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    req = sub.add_parser(
        "request",
        help="Run a JSON engine request (plugin protocol).",
        description='Run one engine request {"version": 1, "command": NAME, "params": {...}} '
        "given as a file or a string; with --jsonl, events stream on stdout as JSON lines.",
    )
    # Not a required group: argparse would refuse 'request --help' before printing the help.
    src = req.add_mutually_exclusive_group()
    src.add_argument("--file", type=Path, help="JSON file with {command, params}.")
    src.add_argument("--json", help="The request as a JSON string.")
    req.add_argument("--jsonl", action="store_true", help="Stream JSON-lines events on stdout.")
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, spec in COMMANDS.items():
        p = sub.add_parser(name, help=spec.summary, description=spec.summary)
        commands[name] = p
        p.add_argument("--config", type=Path, help="YAML or JSON config file; options override it.")
        p.add_argument("--jsonl", action="store_true", help="Stream JSON-lines events on stdout.")
        p.add_argument("-v", "--verbose", action="store_true", help="Show debug messages.")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Override any config key, e.g. --set optim.lr=0.001 (repeatable).",
        )
    return parser, commands


def _add_config_options(parser: argparse.ArgumentParser, cls: type[Config]) -> dict[str, Any]:
    types_by_dest: dict[str, Any] = {}
    for dotted, help_text, tp in _field_options(cls):
        dest = "opt__" + dotted.replace(".", "__")
        flags = [f"--{dotted}"]
        if "_" in dotted:
            flags.append(f"--{dotted.replace('_', '-')}")
        # argparse formats help with %: a literal one ("~0.02 %") must be doubled.
        help_text = help_text.replace("%", "%%")
        parser.add_argument(*flags, dest=dest, default=None, metavar="VALUE", help=help_text)
        types_by_dest[dest] = (dotted, tp)
    return types_by_dest


def _make_reporter(jsonl: bool, verbose: bool = False) -> Reporter:
    return JsonLinesReporter() if jsonl else ConsoleReporter(verbose=verbose)


def _run_guarded(reporter: Reporter, fn: Any) -> int:
    install_signal_cancel(reporter)
    try:
        result = fn()
    except Cancelled as exc:
        reporter.error(exc)
        return EXIT_CANCELLED
    except EngineError as exc:
        reporter.error(exc)
        return EXIT_ERROR
    except Exception as exc:  # unexpected: report, keep the traceback on stderr
        import traceback

        traceback.print_exc(file=sys.stderr)
        reporter.error(exc)
        return EXIT_ERROR
    reporter.result(result)
    if isinstance(reporter, ConsoleReporter):
        print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``canopygaps`` and ``python -m engine``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _build_parser()
    # Two passes: find the command, then add that command's config options (lazy imports).
    # "-h" is held back in the first pass so the command's help lists its config options.
    known, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    if known.command is None:
        parser.print_help()
        return EXIT_USAGE
    if known.command == "request":
        args = parser.parse_args(argv)
        reporter = _make_reporter(args.jsonl)
        if args.file is None and args.json is None:
            reporter.error(ConfigError("Give the request with --file REQ.json or --json TEXT."))
            return EXIT_USAGE
        try:
            request = json.loads(args.json if args.json else args.file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            reporter.error(ConfigError(f"Cannot read the engine request: {exc}"))
            return EXIT_USAGE
        return _run_guarded(reporter, lambda: run_request(request, reporter))

    spec = get_command(known.command)
    config_cls, _ = spec.load()
    types_by_dest = _add_config_options(commands[known.command], config_cls)
    args = parser.parse_args(argv)
    reporter = _make_reporter(args.jsonl, args.verbose)

    def go() -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        for item in args.set:
            if "=" not in item:
                raise ConfigError(f"--set expects KEY=VALUE, got {item!r}.")
            key, value = item.split("=", 1)
            overrides[key.strip()] = value
        for dest, (dotted, tp) in types_by_dest.items():
            raw = getattr(args, dest)
            if raw is not None:
                overrides[dotted] = _parse_value(raw, tp)
        if args.config:
            config = load_config(config_cls, args.config, overrides)
            return run(known.command, config, reporter)
        data: dict[str, Any] = {}
        for dotted, value in overrides.items():
            apply_override(data, dotted, value)
        return run(known.command, data, reporter)

    return _run_guarded(reporter, go)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
