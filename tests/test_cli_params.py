"""Command-line values typed from a task's interface: round trips, and fuzzed text that must fail cleanly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flytelike as fl
from flytelike._cli._params import _from_text
from flytelike._types import type_spec
from flytelike.errors import ValueConversionError


class Color(enum.Enum):
    RED = "r"
    BLUE = "b"


@dataclasses.dataclass
class Box:
    w: float
    tags: list[str]
    color: Color = Color.RED


ANNOTATIONS: list[Any] = [
    int,
    float,
    str,
    bool,
    bytes,
    dt.datetime,
    dt.timedelta,
    Color,
    list[int],
    dict[str, float],
    int | None,
    dt.datetime | None,
    int | str,
    Box,
    list[Box],
    fl.File,
]


@pytest.mark.parametrize(
    ("annotation", "text", "expected"),
    [
        (int, "42", 42),
        (float, "2", 2.0),
        (str, "hello world", "hello world"),
        (bytes, "abc", b"abc"),
        (dt.datetime, "2024-01-02T03:04:05+01:00", dt.datetime.fromisoformat("2024-01-02T03:04:05+01:00")),
        (dt.timedelta, "1h30m", dt.timedelta(minutes=90)),
        (Color, "BLUE", Color.BLUE),
        (Color, "b", Color.BLUE),
        (list[int], "[1, 2, 3]", [1, 2, 3]),
        (dict[str, float], '{"a": 1}', {"a": 1.0}),
        (int | None, "none", None),
        (int | None, "7", 7),
        (dt.datetime | None, "2024-01-01T12:00", dt.datetime(2024, 1, 1, 12)),
        (int | str, '"7"', "7"),
        (Box, '{"w": 1, "tags": ["x"], "color": "BLUE"}', Box(1.0, ["x"], Color.BLUE)),
        (list[Box], '[{"w": 2.5, "tags": []}]', [Box(2.5, [])]),
        (fl.File, "data/x.csv", fl.File("data/x.csv")),
    ],
)
def test_text_becomes_the_typed_value(annotation: Any, text: str, expected: Any) -> None:
    spec = type_spec(annotation, where="t")
    assert spec.check(_from_text(spec, text, "t(x)"), "t(x)") == expected


@pytest.mark.parametrize(
    ("annotation", "text", "fragment"),
    [
        (int, "4.5", "is not a int"),
        (Color, "GREEN", "not one of RED, BLUE"),
        (list[int], "[1, 'a']", "expected JSON"),
        (list[int], '[1, "a"]', "t(x)[1]"),
        (Box, '{"w": 1, "tags": [], "depth": 3}', "unknown field"),
        (dt.timedelta, "soon", "is not a timedelta"),
    ],
)
def test_bad_text_names_the_input(annotation: Any, text: str, fragment: str) -> None:
    spec = type_spec(annotation, where="t")
    with pytest.raises(ValueConversionError, match="t\\(x\\)") as e:
        spec.check(_from_text(spec, text, "t(x)"), "t(x)")
    assert fragment in str(e.value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ANNOTATIONS), st.one_of(st.text(max_size=30), st.builds(json.dumps, st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
))))  # fmt: skip
def test_any_text_either_parses_to_a_conforming_value_or_fails_with_a_conversion_error(
    annotation: Any, text: str
) -> None:
    spec = type_spec(annotation, where="t")
    try:
        value = _from_text(spec, text, "t(x)")
    except ValueConversionError:
        return
    # repr, so that a NaN (a valid float on the command line) compares equal to itself
    assert repr(spec.check(value, "t(x)")) == repr(value)


def test_union_with_str_takes_plain_words_and_keeps_json_strings() -> None:
    spec = type_spec(int | str, where="t")
    assert _from_text(spec, "hello", "t(x)") == "hello"
    assert _from_text(spec, "7", "t(x)") == 7
    assert _from_text(spec, '"7"', "t(x)") == "7"
