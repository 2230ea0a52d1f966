"""Python values <-> literals: property-tested round trips, deterministic bytes, and clear errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import operator
import types
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flytelike as fl
from flytelike._interface import Param
from flytelike._proto.core.v1 import literals_pb2, types_pb2
from flytelike._serde._literals import (
    decode_values,
    encode_values,
    from_literal,
    from_literal_map,
    literal_type,
    to_literal,
    to_literal_map,
)
from flytelike._types import TypeSpec, type_spec
from flytelike.errors import SpecError, ValueConversionError


class Color(enum.Enum):
    RED = "red"
    GREEN = 2
    BLUE = (0, 0, 255)
    CRIMSON = "red"  # noqa: PIE796  (an alias on purpose: it is RED)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float
    label: str = ""


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    color: Color | None = None
    tags: dict[str, int] = dataclasses.field(default_factory=dict)
    when: dt.datetime | None = None


class Model(pydantic.BaseModel):
    name: str
    size: int
    ratio: float
    when: dt.datetime
    tags: list[str] = []
    extra: dict[str, int | None] = {}


def spec_of(annotation: Any) -> TypeSpec:
    return type_spec(annotation, where="t")


# ---------------------------------------------------------------------------------------------------------------
# Strategies: an annotation together with a strategy for its values, nested up to depth 3.

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=8)
OFFSETS = st.integers(min_value=-86_399, max_value=86_399).map(lambda s: dt.timezone(dt.timedelta(seconds=s)))
NAIVE = st.datetimes()
# Aware datetimes are kept a year away from datetime.min/max, so their UTC instant is inside Timestamp's range.
AWARE = st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=OFFSETS)
TIMEDELTAS = st.timedeltas(min_value=dt.timedelta(days=-3_650_000), max_value=dt.timedelta(days=3_650_000))
PATHS = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), min_size=1, max_size=12)
POINTS = st.builds(Point, x=INT64, y=st.floats(), label=TEXT)
SHAPES = st.builds(
    Shape,
    name=TEXT,
    points=st.lists(POINTS, max_size=3),
    color=st.none() | st.sampled_from(Color),
    tags=st.dictionaries(TEXT, INT64, max_size=3),
    when=st.none() | NAIVE | AWARE,
)
MODELS = st.builds(
    Model,
    name=TEXT,
    size=INT64,
    ratio=st.floats(),
    when=st.datetimes(min_value=dt.datetime(1900, 1, 1), timezones=st.sampled_from([None, dt.UTC])),
    tags=st.lists(TEXT, max_size=3),
    extra=st.dictionaries(TEXT, st.none() | INT64, max_size=3),
)

Typed = tuple[Any, st.SearchStrategy[Any]]
LEAVES: list[Typed] = [
    (int, INT64),
    (float, st.floats()),
    (str, st.text()),
    (bool, st.booleans()),
    (bytes, st.binary(max_size=16)),
    (dt.datetime, NAIVE | AWARE),
    (dt.timedelta, TIMEDELTAS),
    (Color, st.sampled_from(Color)),
    (fl.File, st.builds(fl.File, PATHS, st.sampled_from(["", "csv"]))),
    (fl.Dir, st.builds(fl.Dir, PATHS, st.sampled_from(["", "parquet"]))),
    (Point, POINTS),
    (Shape, SHAPES),
    (Model, MODELS),
    (int | str, INT64 | st.text()),
]


def typed(depth: int) -> st.SearchStrategy[Typed]:
    leaf = st.sampled_from(LEAVES).flatmap(st.just)
    if depth == 0:
        return leaf
    inner = typed(depth - 1)
    # Annotations built at run time: list[T], dict[str, T], T | None and A | B of the drawn inner types.
    return st.one_of(
        leaf,
        inner.map(lambda t: (types.GenericAlias(list, (t[0],)), st.lists(t[1], max_size=3))),
        inner.map(lambda t: (types.GenericAlias(dict, (str, t[0])), st.dictionaries(TEXT, t[1], max_size=3))),
        inner.map(lambda t: (operator.or_(t[0], None), st.none() | t[1])),
        st.tuples(inner, inner).map(lambda ab: (operator.or_(ab[0][0], ab[1][0]), ab[0][1] | ab[1][1])),
    )


TYPED = typed(3)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells int from float, -0.0 from 0.0, nan from nan, and compares UTC offsets."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dt.datetime):
        return a == b and a.utcoffset() == b.utcoffset()  # type: ignore[no-any-return]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, pydantic.BaseModel):
        return same(dict(a), dict(b))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    equal: bool = a == b
    return equal


# ---------------------------------------------------------------------------------------------------------------
# Round trips and determinism


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_value_literal_value_round_trip(data: st.DataObject) -> None:
    annotation, values = data.draw(TYPED, label="type")
    spec = spec_of(annotation)
    value = data.draw(values, label="value")
    expected = spec.check(value, "t")  # the conformed value: what crosses a task boundary
    literal = to_literal(value, spec, where="t")
    wire = literal.SerializeToString(deterministic=True)
    back = from_literal(literals_pb2.Literal.FromString(wire), spec, where="t")
    assert same(back, expected), (back, expected)
    # Deterministic and canonical: encoding the decoded value gives the very same bytes.
    assert to_literal(back, spec, where="t").SerializeToString(deterministic=True) == wire
    assert to_literal(value, spec, where="t").SerializeToString(deterministic=True) == wire


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_values_round_trip_as_bytes_whatever_the_insertion_order(data: st.DataObject) -> None:
    params = []
    values = {}
    for i in range(data.draw(st.integers(1, 4), label="count")):
        annotation, strategy = data.draw(TYPED, label=f"type {i}")
        params.append(Param(f"p{i}", spec_of(annotation)))
        values[f"p{i}"] = data.draw(strategy, label=f"value {i}")
    blob = encode_values(values, params, where="task")
    assert encode_values(dict(reversed(values.items())), params, where="task") == blob
    decoded = decode_values(blob, params, where="task")
    assert list(decoded) == list(values)
    for p in params:
        assert same(decoded[p.name], p.type.check(values[p.name], "t"))


def test_same_values_give_identical_bytes_in_any_dict_order() -> None:
    spec = spec_of(dict[str, list[int]])
    a = to_literal({"b": [1], "a": [2, 3]}, spec, where="t").SerializeToString(deterministic=True)
    b = to_literal({"a": [2, 3], "b": [1]}, spec, where="t").SerializeToString(deterministic=True)
    assert a == b
    assert list(from_literal(literals_pb2.Literal.FromString(a), spec, where="t")) == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (float("nan"), float),
        (float("-inf"), float),
        (-0.0, float),
        (2**63 - 1, int),
        (-(2**63), int),
        (dt.datetime(1970, 1, 1), dt.datetime),
        (dt.datetime.min, dt.datetime),
        (dt.datetime.max, dt.datetime),
        (dt.datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-7, seconds=30))), dt.datetime),
        (dt.timedelta(microseconds=-1), dt.timedelta),
        (dt.timedelta(days=-3, seconds=5, microseconds=7), dt.timedelta),
        ([], list[int]),
        ({}, dict[str, int]),
        (Color.CRIMSON, Color),
        (None, int | None),
        (Point(1, 2.0), Point | None),
        (True, int | bool),
        (1, float | int),
        ("", str),
    ],
)
def test_edge_values_round_trip_exactly(value: Any, annotation: Any) -> None:
    spec = spec_of(annotation)
    back = from_literal(to_literal(value, spec, where="t"), spec, where="t")
    assert same(back, value)


def test_naive_and_aware_datetimes_stay_distinct() -> None:
    spec = spec_of(dt.datetime)
    naive = dt.datetime(2024, 1, 1, 12)
    aware = naive.replace(tzinfo=dt.UTC)
    ln, la = to_literal(naive, spec, where="t"), to_literal(aware, spec, where="t")
    assert ln.datetime_value.instant == la.datetime_value.instant  # a naive datetime is taken as UTC
    assert not ln.datetime_value.HasField("utc_offset_seconds")
    assert la.datetime_value.utc_offset_seconds == 0
    assert from_literal(ln, spec, where="t").tzinfo is None
    assert from_literal(la, spec, where="t").utcoffset() == dt.timedelta(0)


def test_ints_widen_to_float_as_check_does() -> None:
    assert same(from_literal(to_literal(3, spec_of(float), where="t"), spec_of(float), where="t"), 3.0)


def test_a_model_input_accepts_a_dict_it_validates() -> None:
    spec = spec_of(Model)
    data = {"name": "m", "size": 1, "ratio": 0.5, "when": "2024-01-01T00:00:00"}
    assert from_literal(to_literal(data, spec, where="t"), spec, where="t") == Model.model_validate(data)


# ---------------------------------------------------------------------------------------------------------------
# Literal types


def test_literal_types_follow_the_documented_mapping() -> None:
    lt = types_pb2.LiteralType
    assert literal_type(spec_of(int)).simple == lt.INTEGER
    assert literal_type(spec_of(dt.timedelta)).simple == lt.DURATION
    assert literal_type(spec_of(list[bytes])).collection_type.simple == lt.BINARY
    assert literal_type(spec_of(dict[str, bool])).map_value_type.simple == lt.BOOLEAN
    assert literal_type(spec_of(fl.Dir)).blob.dimensionality == types_pb2.BlobType.MULTIPART
    enum_type = literal_type(spec_of(Color)).enum_type
    assert list(enum_type.values) == ["RED", "GREEN", "BLUE"]
    assert enum_type.name == f"{__name__}.Color"
    union = literal_type(spec_of(int | str | None)).union_type
    assert [(v.WhichOneof("type"), v.structure.tag) for v in union.variants] == [
        ("simple", "int"),
        ("simple", "str"),
        ("simple", "none"),
    ]


def test_records_list_their_fields_and_json_schema() -> None:
    shape = literal_type(spec_of(Shape))
    assert shape.simple == types_pb2.LiteralType.STRUCT
    assert shape.record.name == f"{__name__}.Shape"
    assert shape.record.kind == types_pb2.RecordType.DATACLASS
    assert [(f.name, f.has_default) for f in shape.record.fields] == [
        ("name", False),
        ("points", False),
        ("color", True),
        ("tags", True),
        ("when", True),
    ]
    assert shape.record.fields[1].type.collection_type.record.name == f"{__name__}.Point"
    assert '"Point"' in shape.record.json_schema
    model = literal_type(spec_of(Model)).record
    assert model.kind == types_pb2.RecordType.PYDANTIC
    assert [f.name for f in model.fields] == ["name", "size", "ratio", "when", "tags", "extra"]
    assert '"ratio"' in model.json_schema


def test_literal_type_returns_a_fresh_message() -> None:
    first = literal_type(spec_of(list[int]))
    first.collection_type.simple = types_pb2.LiteralType.STRING
    assert literal_type(spec_of(list[int])).collection_type.simple == types_pb2.LiteralType.INTEGER


def test_a_union_of_two_classes_with_the_same_name_is_rejected() -> None:
    other = dataclasses.make_dataclass("Point", [("z", int)])
    with pytest.raises(SpecError, match="same type name"):
        literal_type(spec_of(Point | other))


# ---------------------------------------------------------------------------------------------------------------
# Errors name where, the expected type and the value


def conversion_error(fn: Callable[[], object]) -> str:
    with pytest.raises(ValueConversionError) as info:
        fn()
    return str(info.value)


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        (int, "3", "train(lr): expected int, got str '3'"),
        (int, True, "train(lr): expected int, got bool True"),
        (float, False, "train(lr): expected float, got bool False"),
        (int, 2**63, "train(lr): int value 9223372036854775808 is outside the signed 64-bit range"),
        (float, 10**400, "train(lr): float value 1000"),
        (list[int], [1, "a"], "train(lr)[1]: expected int, got str 'a'"),
        (dict[str, int], {1: 2}, "dict keys must be str, got int 1"),
        (dict[str, list[int]], {"k": [None]}, "train(lr)['k'][0]: expected int, got NoneType None"),
        (Shape, Shape("s", [Point(1, "y")]), "train(lr).points[0].y: expected float, got str 'y'"),  # type: ignore[arg-type]
        (Point, Shape("s", []), "train(lr): expected Point, got Shape"),
        (int | str, 1.5, "train(lr): expected int | str, got float 1.5"),
        (str, "\ud800", "train(lr): str value '\\ud800' cannot be stored"),
        (fl.File, fl.Dir("x"), "train(lr): expected file, got Dir"),
        (dt.timedelta, dt.timedelta.max, "is longer than the +-10,000 years a protobuf Duration holds"),
        (
            dt.datetime,
            dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-1))),
            "is outside the years 1-9999 in UTC",
        ),
        (Color, "RED", "train(lr): expected Color, got str 'RED'"),
    ],
)
def test_encoding_errors_are_clear(annotation: Any, value: Any, message: str) -> None:
    assert message in conversion_error(lambda: to_literal(value, spec_of(annotation), where="train(lr)"))


def test_an_int_that_is_too_big_in_a_union_is_not_silently_taken_as_another_variant() -> None:
    message = conversion_error(lambda: to_literal(2**64, spec_of(int | float), where="f(x)"))
    assert "outside the signed 64-bit range" in message


def test_a_model_with_an_int_beyond_64_bits_is_rejected() -> None:
    value = Model(name="m", size=2**70, ratio=1.0, when=dt.datetime(2024, 1, 1))
    assert "f(m).size: Model value" in conversion_error(lambda: to_literal(value, spec_of(Model), where="f(m)"))


def test_decoding_errors_are_clear() -> None:
    literal = to_literal("x", spec_of(str), where="t")
    message = conversion_error(lambda: from_literal(literal, spec_of(int), where="f(n)"))
    assert message == "f(n): expected int (int_value), got a literal holding str_value"
    empty = conversion_error(lambda: from_literal(literals_pb2.Literal(), spec_of(int), where="f(n)"))
    assert "got an empty literal" in empty
    union = to_literal(1, spec_of(int | str), where="t")
    union.union_value.tag = "float"
    assert "is not a variant tag; expected one of int, str" in conversion_error(
        lambda: from_literal(union, spec_of(int | str), where="f(n)")
    )
    enum_literal = literals_pb2.Literal(enum_value="PURPLE")
    assert "is not a member of Color" in conversion_error(lambda: from_literal(enum_literal, spec_of(Color), where="c"))
    blob = to_literal(fl.Dir("s3://b/d"), spec_of(fl.Dir), where="t")
    assert "is a directory blob" in conversion_error(lambda: from_literal(blob, spec_of(fl.File), where="f"))
    nanos = literals_pb2.Literal()
    nanos.timedelta_value.nanos = 5
    assert "has nanoseconds" in conversion_error(lambda: from_literal(nanos, spec_of(dt.timedelta), where="d"))


def test_a_record_missing_a_required_field_is_rejected() -> None:
    literal = to_literal(Point(1, 2.0), spec_of(Point), where="t")
    del literal.record_value.fields["x"]
    assert "cannot be rebuilt" in conversion_error(lambda: from_literal(literal, spec_of(Point), where="p"))
    literal.record_value.fields["z"].int_value = 1
    assert "names fields Point does not have" in conversion_error(
        lambda: from_literal(literal, spec_of(Point), where="p")
    )


def test_literal_maps_check_names() -> None:
    params = [Param("n", spec_of(int)), Param("s", spec_of(str), default="x")]
    assert "f: unexpected value 'm'; the names declared are: n, s" in conversion_error(
        lambda: to_literal_map({"m": 1}, params, where="f")
    )
    assert "f(n): expected int, got str 'x'" in conversion_error(lambda: to_literal_map({"n": "x"}, params, where="f"))
    literals = to_literal_map({"n": 1}, params, where="f")
    assert from_literal_map(literals, params, where="f") == {"n": 1}  # only the params present
    literals.literals["zz"].int_value = 2
    assert "unexpected value 'zz'" in conversion_error(lambda: from_literal_map(literals, params, where="f"))
    assert "f: not serialized values" in conversion_error(lambda: decode_values(b"\xff\xff", params, where="f"))
