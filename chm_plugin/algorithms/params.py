"""Processing parameters built from the engine schema: one :class:`EngineParam` per setting.

An :class:`EngineParam` names the Processing parameter, the engine config key it feeds (dotted
for nested settings: ``split.val_fraction``, ``model.args.depth``), its label and where it sits
(Advanced or not). Type, default, bounds, choices and help come from the engine schema
(:mod:`chm_plugin.schema`); ``help`` replaces the engine's text only where that text speaks of
engine keys or files. Adding an engine option to an algorithm is one more ``EngineParam``.

Schema type -> parameter: integer/number -> Number (optional when the engine default is empty),
integer with ``band_of`` -> Band of that raster parameter, boolean -> Boolean, anything with
choices -> Enum by name (``DEVICE=cpu``), array of numbers -> comma-separated String, string ->
String.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)


@dataclass(frozen=True)
class EngineParam:
    """A Processing parameter feeding one engine config key."""

    name: str
    key: str
    label: str
    advanced: bool = False
    help: str = ""
    band_of: str = ""


def _number_text(values: list[Any] | None) -> str:
    return ",".join(f"{float(v):g}" for v in values or [])


def numbers_list(text: str, label: str = "Thresholds (m)") -> list[float]:
    """'2, 5;10' -> [2.0, 5.0, 10.0]; a QgsProcessingException names ``label`` otherwise."""
    values = []
    for part in str(text or "").replace(";", ",").replace(" ", ",").split(","):
        if not part.strip():
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise QgsProcessingException(
                f"'{label}' takes numbers separated by commas, e.g. '2,5,10'; got {part!r}."
            ) from None
    return values


def _number(spec: EngineParam, entry: dict[str, Any]) -> QgsProcessingParameterDefinition:
    num = QgsProcessingParameterNumber
    integer = entry["type"] == "integer"
    default = entry.get("default")
    optional = default is None
    lo, hi = entry.get("minimum"), entry.get("maximum")
    if lo is not None and entry.get("exclusive_minimum") and integer:
        lo += 1
    if spec.band_of:
        return QgsProcessingParameterBand(
            spec.name, spec.label, default, spec.band_of, optional=optional
        )
    param = num(spec.name, spec.label, num.Integer if integer else num.Double, default, optional)
    if lo is not None:
        param.setMinimum(lo)
    if hi is not None:
        param.setMaximum(hi)
    return param


def definition(spec: EngineParam, entry: dict[str, Any]) -> QgsProcessingParameterDefinition:
    """The Processing parameter of ``spec`` for schema ``entry``."""
    kind, default = entry["type"], entry.get("default")
    if entry.get("choices"):
        options = [str(c) for c in entry["choices"]]
        return QgsProcessingParameterEnum(
            spec.name, spec.label, options, False, default, False, True
        )
    if kind in ("integer", "number"):
        return _number(spec, entry)
    if kind == "boolean":
        return QgsProcessingParameterBoolean(spec.name, spec.label, bool(default))
    if kind == "array" and entry.get("items") == "number":
        return QgsProcessingParameterString(
            spec.name, spec.label, _number_text(default), optional=default is None
        )
    if kind == "string":
        return QgsProcessingParameterString(
            spec.name, spec.label, default or "", optional=default is None
        )
    raise TypeError(f"No Processing parameter for engine setting {spec.key} of type {kind}.")


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_value(
    alg: QgsProcessingAlgorithm,
    spec: EngineParam,
    entry: dict[str, Any],
    parameters: dict[str, Any],
    context: QgsProcessingContext,
) -> Any:
    """The engine value of ``spec`` in ``parameters`` (None = empty)."""
    kind, name = entry["type"], spec.name
    if entry.get("choices"):
        return alg.parameterAsEnumString(parameters, name, context) or None
    if kind == "boolean":
        return alg.parameterAsBoolean(parameters, name, context)
    if kind in ("integer", "number"):
        raw = parameters.get(name)
        if _empty(raw) and entry.get("default") is None:
            return None
        if kind == "integer":
            return alg.parameterAsInt(parameters, name, context)
        return alg.parameterAsDouble(parameters, name, context)
    if kind == "array":
        return numbers_list(alg.parameterAsString(parameters, name, context), spec.label) or None
    text = alg.parameterAsString(parameters, name, context).strip()
    return text or None


def set_key(params: dict[str, Any], dotted: str, value: Any) -> None:
    """``params['a']['b'] = value`` for ``dotted='a.b'`` (sections created as needed)."""
    node = params
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def engine_values(
    alg: QgsProcessingAlgorithm,
    specs: Iterable[EngineParam],
    command: str,
    parameters: dict[str, Any],
    context: QgsProcessingContext,
) -> dict[str, Any]:
    """The nested engine params of every spec; empty values are sent only where the engine
    takes an empty value (else the engine's default applies)."""
    from chm_plugin.schema import field_entry

    params: dict[str, Any] = {}
    for spec in specs:
        entry = field_entry(command, spec.key)
        value = read_value(alg, spec, entry, parameters, context)
        if value is not None or entry.get("nullable"):
            set_key(params, spec.key, value)
    return params
