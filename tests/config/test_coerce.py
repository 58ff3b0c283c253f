"""engine.config.base: each field type's coercion and the message that names the bad key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from engine.config.base import Config, from_dict
from engine.errors import ConfigError


@dataclass
class Section(Config):
    depth: int = 2


@dataclass
class AllTypes(Config):
    flag: bool = False
    count: int = 0
    ratio: float = 0.0
    text: str = ""
    path: Path | None = None
    mode: Literal["a", "b"] = "a"
    pair: tuple[int, ...] = ()
    sizes: list[float] = field(default_factory=list)
    table: dict[str, int] = field(default_factory=dict)
    either: int | str | None = None
    choice: int | str = 0
    section: Section = field(default_factory=Section)
    anything: Any = None


@pytest.mark.parametrize(
    ("key", "given", "expected"),
    [
        ("flag", True, True),
        ("flag", "yes", True),
        ("flag", "1", True),
        ("flag", "TRUE", True),
        ("flag", "no", False),
        ("flag", "0", False),
        ("count", "7", 7),
        ("count", 7, 7),
        ("ratio", 2, 2.0),
        ("ratio", "0.5", 0.5),
        ("text", 12, "12"),
        ("text", 1.5, "1.5"),
        ("path", "a/b.tif", Path("a/b.tif")),
        ("path", None, None),
        ("mode", "b", "b"),
        ("pair", [1, "2"], (1, 2)),
        ("sizes", (1, "2.5"), [1.0, 2.5]),
        ("table", {"x": "3", 4: 5}, {"x": 3, "4": 5}),
        ("either", 3, 3),
        ("either", "three", "three"),
        ("either", None, None),
        ("anything", {"k": [1]}, {"k": [1]}),
    ],
)
def test_values_are_converted(key: str, given: Any, expected: Any) -> None:
    value = getattr(from_dict(AllTypes, {key: given}), key)
    assert value == expected and type(value) is type(expected)


def test_nested_section_from_mapping_or_instance() -> None:
    assert from_dict(AllTypes, {"section": {"depth": "3"}}).section.depth == 3
    ready = Section(depth=5)
    assert from_dict(AllTypes, {"section": ready}).section is ready


@pytest.mark.parametrize(
    ("key", "given", "message"),
    [
        ("flag", "maybe", "Config key 'flag' must be true or false, got 'maybe'."),
        ("flag", 1, "Config key 'flag' must be true or false, got 1."),
        ("count", True, "Config key 'count' must be an integer, got True."),
        ("count", 1.5, "Config key 'count' must be an integer, got 1.5."),
        ("count", "x", "Config key 'count' must be an integer, got 'x'."),
        ("ratio", False, "Config key 'ratio' must be a number, got False."),
        ("ratio", "x", "Config key 'ratio' must be a number, got 'x'."),
        ("ratio", "nan", "Config key 'ratio' must be a finite number, got 'nan'."),
        ("ratio", float("inf"), "Config key 'ratio' must be a finite number, got inf."),
        ("text", True, "Config key 'text' must be text, got True."),
        ("text", [1], "Config key 'text' must be text, got [1]."),
        ("path", 3, "Config key 'path' must be a path, got 3."),
        ("mode", "c", "Config key 'mode' has value 'c'; valid values: 'a', 'b'."),
        ("pair", 3, "Config key 'pair' must be a list, got int 3."),
        ("sizes", [1, "x"], "Config key 'sizes[1]' must be a number, got 'x'."),
        ("table", [1], "Config key 'table' must be a mapping, got list."),
        ("table", {"n": "x"}, "Config key 'table.n' must be an integer, got 'x'."),
        ("section", 3, "Config key 'section' must be a mapping of Section settings."),
        ("section", {"depth": "x"}, "Config key 'section.depth' must be an integer, got 'x'."),
        ("mode", None, "Config key 'mode' has value None; valid values: 'a', 'b'."),
        ("choice", None, "Config key 'choice' must not be empty (null)."),
        (
            "either",
            [1],
            "Config key 'either': Config key 'either' must be an integer, got [1].; "
            "Config key 'either' must be text, got [1].",
        ),
    ],
)
def test_errors_name_the_key(key: str, given: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(AllTypes, {key: given})
    assert info.value.message == message


@dataclass
class Required(Config):
    size: int
    path: Path | None = None


def test_null_only_where_the_type_allows_it() -> None:
    assert from_dict(Required, {"size": 1, "path": None}).path is None
    with pytest.raises(ConfigError) as info:
        from_dict(Required, {"size": None})
    assert info.value.message == "Config key 'size' must be an integer, got None."


@dataclass
class OptionalNumber(Config):
    number: float | None = 1.0


def test_single_member_union_reports_that_members_message() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(OptionalNumber, {"number": "x"})
    assert info.value.message == "Config key 'number' must be a number, got 'x'."
