"""The engine's parameter schema as shipped with the plugin (``engine_schema.json``).

Exported from the engine's config dataclasses (``python -m engine.config.schema``) when the
plugin is packaged, and kept in the checkout with a test that a fresh export equals it, so the
plugin knows every default, bound, choice and help text without importing the engine.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from chm_plugin.paths import PLUGIN_DIR

SCHEMA_FILE = PLUGIN_DIR / "engine_schema.json"
SCHEMA_FORMAT = "canopygaps-engine-schema"


@lru_cache(maxsize=1)
def engine_schema() -> dict[str, Any]:
    """The whole schema (read once)."""
    data = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    if data.get("format") != SCHEMA_FORMAT:
        raise ValueError(f"{SCHEMA_FILE} is not a {SCHEMA_FORMAT} file.")
    return data


def command_fields(command: str) -> dict[str, dict[str, Any]]:
    """``{dotted key: entry}`` of one engine command."""
    return engine_schema()["commands"][command]["fields"]


def field_entry(command: str, key: str) -> dict[str, Any]:
    """The schema entry of ``key`` of ``command``; KeyError names both (a plugin bug)."""
    try:
        return command_fields(command)[key]
    except KeyError:
        raise KeyError(f"The engine command '{command}' has no setting '{key}'.") from None
