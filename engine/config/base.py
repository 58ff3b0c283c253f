"""Dataclass configs built from plain dicts (YAML/JSON) with strict validation.

A config class is a ``@dataclass`` subclassing :class:`Config`. :func:`from_dict` checks every
key: an unknown key, a missing required key, or a value of the wrong type raises
:class:`~engine.errors.ConfigError` naming the full dotted key. Supported field types: ``int``,
``float``, ``str``, ``bool``, ``Path``, ``Literal[...]``, ``X | None``, ``list[X]``,
``tuple[X, ...]``, ``dict[str, X]`` and nested :class:`Config` dataclasses. A field may define
its own check in ``metadata={"check": fn}`` where ``fn(value)`` returns an error string or None.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from engine.errors import ConfigError

CONFIG_VERSION = 1

C = TypeVar("C", bound="Config")


@dataclasses.dataclass
class Config:
    """Base class of typed configs; subclasses are dataclasses."""

    def validate(self) -> None:
        """Cross-field checks; override and raise :class:`ConfigError`."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (paths as strings), ready for YAML/JSON."""
        return to_dict(self)

    def save(self, path: str | Path) -> Path:
        """Write the config (with ``config_version`` and its kind) as YAML or JSON by suffix."""
        from engine.io.files import atomic_write_text

        path = Path(path)
        data = {"config_version": CONFIG_VERSION, "kind": type(self).__name__, **self.to_dict()}
        if path.suffix.lower() == ".json":
            text = json.dumps(data, indent=2)
        else:
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        atomic_write_text(path, text)
        return path


def to_dict(obj: Any) -> Any:
    """Recursively convert dataclasses, paths and tuples to plain data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; return it converted (e.g. int -> float, str -> Path)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin is Literal:
        return _coerce_literal(value, tp, key)
    if origin in (list, tuple):
        return _coerce_sequence(value, tp, key)
    if origin is dict:
        return _coerce_mapping(value, tp, key)
    if isinstance(tp, type) and issubclass(tp, Config):
        return _coerce_config(value, tp, key)
    scalar = _SCALAR_COERCIONS.get(tp)
    if scalar is not None:
        return scalar(value, key)
    raise ConfigError(f"Config key '{key}': unsupported type {_type_name(tp)}.")  # pragma: no cover


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    """``X | Y | None``: None where allowed, else the first member type that accepts ``value``."""
    args = get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"Config key '{key}' must not be empty (null).")
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, key)
        except ConfigError as exc:
            errors.append(exc.message)
    raise ConfigError(errors[0] if len(errors) == 1 else f"Config key '{key}': {'; '.join(errors)}")


def _coerce_literal(value: Any, tp: Any, key: str) -> Any:
    """``Literal[...]``: one of the listed values."""
    allowed = get_args(tp)
    if value not in allowed:
        raise ConfigError(
            f"Config key '{key}' has value {value!r}; "
            f"valid values: {', '.join(map(repr, allowed))}."
        )
    return value


def _coerce_sequence(value: Any, tp: Any, key: str) -> list[Any] | tuple[Any, ...]:
    """``list[X]`` / ``tuple[X, ...]``: each item coerced, keyed ``key[i]``."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"Config key '{key}' must be a list, got {type(value).__name__} {value!r}."
        )
    args = get_args(tp)
    item_tp = args[0] if args else Any
    items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if get_origin(tp) is tuple else items


def _coerce_mapping(value: Any, tp: Any, key: str) -> dict[str, Any]:
    """``dict[str, X]``: string keys, each value coerced, keyed ``key.name``."""
    if not isinstance(value, dict):
        raise ConfigError(f"Config key '{key}' must be a mapping, got {type(value).__name__}.")
    _, val_tp = get_args(tp) or (str, Any)
    return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}


def _coerce_config(value: Any, tp: type[Config], key: str) -> Config:
    """A nested config section: kept when already built, else built from its mapping."""
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"Config key '{key}' must be a mapping of {tp.__name__} settings.")
    return from_dict(tp, value, prefix=f"{key}.")


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ConfigError(f"Config key '{key}' must be true or false, got {value!r}.")


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"Config key '{key}' must be an integer, got {value!r}.")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"Config key '{key}' must be an integer, got {value!r}.") from None


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"Config key '{key}' must be a number, got {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"Config key '{key}' must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise ConfigError(
            f"Config key '{key}' must be a finite number, got {value!r}.",
            "Give an ordinary number (NaN and infinity have no meaning here).",
        )
    return number


def _to_str(value: Any, key: str) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"Config key '{key}' must be text, got {value!r}.")
    return str(value)


def _to_path(value: Any, key: str) -> Path:
    if not isinstance(value, (str, Path)):
        raise ConfigError(f"Config key '{key}' must be a path, got {value!r}.")
    return Path(value)


_SCALAR_COERCIONS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    Path: _to_path,
}
"""Coercion of each scalar field type (``value``, dotted ``key``) -> converted value."""


def from_dict(cls: type[C], data: dict[str, Any] | None, prefix: str = "") -> C:
    """Build config ``cls`` from ``data``; unknown, missing or ill-typed keys raise ConfigError."""
    data = dict(data or {})
    data.pop("config_version", None)
    kind = data.pop("kind", None)
    if kind is not None and kind != cls.__name__ and not prefix:
        raise ConfigError(f"This file holds a {kind} config, not a {cls.__name__} config.")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"Unknown config key(s) {', '.join(repr(prefix + k) for k in unknown)}; "
            f"valid keys here: {', '.join(sorted(fields))}."
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = prefix + name
        if name in data:
            value = _coerce(data[name], hints[name], key)
            check = field.metadata.get("check")
            if check is not None:
                problem = check(value)
                if problem:
                    raise ConfigError(f"Config key '{key}' = {data[name]!r}: {problem}")
            kwargs[name] = value
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Config key '{key}' is required.")
    obj = cls(**kwargs)
    obj.validate()
    return obj


def load_config(cls: type[C], path: str | Path, overrides: dict[str, Any] | None = None) -> C:
    """Read a YAML/JSON config file, apply dotted ``overrides`` and validate."""
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"Config file {path} is a folder.", "Give the path of a YAML or JSON config file."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Config file {path} cannot be read ({getattr(exc, 'strerror', None) or exc}).",
            "Give a readable YAML or JSON text file.",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys to values.")
    for dotted, value in (overrides or {}).items():
        apply_override(data, dotted, value)
    return from_dict(cls, data)


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``; strings are parsed as YAML scalars."""
    import yaml

    if isinstance(value, str):
        value = yaml.safe_load(value) if value else value
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Cannot set '{dotted}': '{part}' is not a section.")
    node[parts[-1]] = value


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A field check for numbers in an inclusive range (``exclusive_minimum``: strictly above).

    Used as ``metadata={"check": Bounds(...)}``: :func:`from_dict` calls it (None passes, for
    optional fields), and :mod:`engine.config.schema` exports the bounds for front ends.
    """

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False

    def __call__(self, value: Any) -> str | None:
        if value is None:
            return None
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value <= lo if self.exclusive_minimum else value < lo):
            return self.describe()
        if hi is not None and value > hi:
            return self.describe()
        return None

    def describe(self) -> str:
        """'must be ...' sentence of the range."""
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"must be between {lo:g} and {hi:g}."
        if lo is not None:
            return (
                f"must be greater than {lo:g}."
                if self.exclusive_minimum
                else ("must not be negative." if lo == 0 else f"must be {lo:g} or more.")
            )
        return f"must be {hi:g} or less."


positive = Bounds(minimum=0, exclusive_minimum=True)
"""Field check: value > 0."""
non_negative = Bounds(minimum=0)
"""Field check: value >= 0."""
fraction = Bounds(minimum=0, maximum=1)
"""Field check: 0 <= value <= 1."""


def at_least(minimum: float) -> Bounds:
    """Field check: value >= ``minimum``."""
    return Bounds(minimum=minimum)


def between(minimum: float, maximum: float) -> Bounds:
    """Field check: ``minimum`` <= value <= ``maximum``."""
    return Bounds(minimum=minimum, maximum=maximum)


def thresholds_ok(value: Any) -> str | None:
    """Field check of height thresholds: at least one, each above 0 m, each given once."""
    if value is None:
        return None
    if not value:
        return "give at least one threshold."
    if any(t <= 0 for t in value):
        return "thresholds are heights in metres: each must be greater than 0."
    if len(set(value)) != len(value):
        return "each threshold must be given once (duplicates would make identical bands)."
    return None


_ = typing  # keep typing importable for string annotations in subclasses
