"""The engine's parameter schema: every command's config fields as plain JSON for front ends.

``python -m engine.config.schema --output FILE`` writes it; ``--check FILE`` exits 1 when FILE
differs from a fresh export. The QGIS plugin ships the export (``chm_plugin/engine_schema.json``,
checked by ``make package`` and a test) and builds its parameters from it, so defaults, bounds,
choices and help live once, in the config dataclasses, and the plugin never imports the engine.

Per command: ``{"summary", "fields": {key: entry}}``. Nested configs are flattened with dots
(``split.val_fraction``), lists of configs with ``[]`` (``sites[].dsm``), and mapping fields
whose metadata declares ``"fields"`` with dots (``model.args.depth``). An entry holds ``type``
(integer, number, boolean, string, path, array, object, any, or a list of them), ``nullable``,
``required``, ``default`` (when not required), ``help``, and where declared ``items`` (type of
array items), ``choices`` (``Literal`` values or ``metadata["choices"]``) and the bounds of a
:class:`~engine.config.base.Bounds` check (``minimum``, ``maximum``, ``exclusive_minimum``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from engine import __version__
from engine.config.base import Bounds, Config, to_dict

SCHEMA_FORMAT = "canopygaps-engine-schema"
SCHEMA_VERSION = 1
_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}


def type_entry(tp: Any) -> dict[str, Any]:
    """``{"type", "nullable"[, "items", "choices"]}`` of a config field type."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        parts = [type_entry(a) for a in args]
        entry: dict[str, Any] = (
            dict(parts[0]) if len(parts) == 1 else {"type": [p["type"] for p in parts]}
        )
        entry["nullable"] = len(args) < len(get_args(tp))
        return entry
    if origin is Literal:
        values = list(get_args(tp))
        return {"type": _SCALARS.get(type(values[0]), "any"), "nullable": False, "choices": values}
    if origin in (list, tuple):
        items = type_entry(get_args(tp)[0])["type"]
        return {"type": "array", "nullable": False, "items": items}
    if origin is dict:
        return {"type": "object", "nullable": False}
    return {"type": _SCALARS.get(tp, "any"), "nullable": False}


def _constraints(meta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    check = meta.get("check")
    if isinstance(check, Bounds):
        for name in ("minimum", "maximum"):
            if getattr(check, name) is not None:
                out[name] = getattr(check, name)
        if check.exclusive_minimum:
            out["exclusive_minimum"] = True
    choices = meta.get("choices")
    if choices is not None:
        out["choices"] = list(choices() if callable(choices) else choices)
    return out


def _default(field: dataclasses.Field[Any]) -> tuple[bool, Any]:
    """(required, default as plain data)."""
    if field.default is not dataclasses.MISSING:
        return False, to_dict(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return False, to_dict(field.default_factory())
    return True, None


def _entry(field: dataclasses.Field[Any], tp: Any) -> dict[str, Any]:
    entry = type_entry(tp)
    required, default = _default(field)
    entry["required"] = required
    if not required:
        entry["default"] = default
    entry["help"] = str(field.metadata.get("help", ""))
    entry.update(_constraints(field.metadata))
    return entry


def _sub_fields(field: dataclasses.Field[Any], key: str) -> dict[str, dict[str, Any]]:
    """Entries of the declared keys of a mapping field (``metadata["fields"]``)."""
    defaults_of = field.metadata.get("field_defaults")
    defaults = defaults_of() if callable(defaults_of) else {}
    out = {}
    for name, spec in field.metadata["fields"].items():
        entry = type_entry(spec["type"])
        entry.update(required=False, default=to_dict(defaults.get(name, spec.get("default"))))
        entry["help"] = str(spec.get("help", ""))
        entry.update(_constraints(spec))
        out[f"{key}.{name}"] = entry
    return out


def config_fields(cls: type[Config], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Flattened entries of every field of config class ``cls``."""
    out: dict[str, dict[str, Any]] = {}
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp, key = hints[field.name], prefix + field.name
        item = get_args(tp)[0] if get_origin(tp) is list and get_args(tp) else None
        if isinstance(tp, type) and issubclass(tp, Config):
            out.update(config_fields(tp, key + "."))
        elif isinstance(item, type) and issubclass(item, Config):
            out.update(config_fields(item, key + "[]."))
        else:
            out[key] = _entry(field, tp)
            if "fields" in field.metadata:
                out.update(_sub_fields(field, key))
    return out


def engine_schema() -> dict[str, Any]:
    """The schema of every engine command (imports each command's module)."""
    from engine.api import COMMANDS

    commands = {}
    for name, spec in COMMANDS.items():
        config_cls, _ = spec.load()
        commands[name] = {"summary": spec.summary, "fields": config_fields(config_cls)}
    return {
        "format": SCHEMA_FORMAT,
        "format_version": SCHEMA_VERSION,
        "engine_version": __version__,
        "commands": commands,
    }


def schema_text() -> str:
    """The schema as the JSON text written to files."""
    return json.dumps(engine_schema(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.config.schema [--output FILE | --check FILE]``."""
    parser = argparse.ArgumentParser(description="Export the engine's parameter schema (JSON).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--output", type=Path, help="Write the schema to this file.")
    group.add_argument("--check", type=Path, help="Exit 1 if this file is not the fresh schema.")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else ""
        if current != text:
            print(f"{args.check} is out of date: regenerate it with --output.", file=sys.stderr)
            return 1
        return 0
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from engine.io.files import atomic_write_text

    atomic_write_text(args.output, text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
