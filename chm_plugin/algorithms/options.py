"""The Advanced OPTIONS parameter: further engine settings as 'key=value; ...' text."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import QgsProcessingException

OPTIONS_HELP = (
    "Further engine settings as 'key=value' pairs separated by ';' (dotted keys for nested "
    "settings). Values are JSON (numbers, true/false, [lists], {{mappings}}) or plain text; an "
    "unknown key is an error that lists the valid ones. Settings not offered as parameters: "
    "{keys}."
)


def _parse_value(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("null", "none", ""):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_options(params: dict[str, Any], text: str) -> dict[str, Any]:
    """Merge 'a.b=1; c=x' overrides into ``params`` (nested mappings created as needed)."""
    for item in str(text or "").replace("\n", ";").split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise QgsProcessingException(
                "'More engine settings' takes key=value pairs separated by ';', got "
                f"{item.strip()!r}."
            )
        key, value = item.split("=", 1)
        parts = [p.strip() for p in key.strip().split(".") if p.strip()]
        if not parts:
            raise QgsProcessingException(f"Empty key in 'More engine settings': {item.strip()!r}.")
        node = params
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise QgsProcessingException(
                    f"'More engine settings' {key.strip()!r}: {part!r} is not a section."
                )
            node = child
        node[parts[-1]] = _parse_value(value)
    return params


def options_help(command: str, mapped: set[str]) -> str:
    """Help of OPTIONS for ``command``: the settings that no parameter sets."""
    from chm_plugin.schema import command_fields

    keys = [
        k
        for k, entry in command_fields(command).items()
        if k not in mapped and "[]" not in k and entry["type"] != "path"
    ]
    return OPTIONS_HELP.format(keys=", ".join(keys) or "none")
