"""Typed interfaces: supported annotations, outputs, binding call arguments and checking values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib.util
import sys
import textwrap
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, Union

import pydantic
import pytest

import flytelike as fl
from flytelike import SpecError
from flytelike._interface import Interface
from flytelike._types import TypeSpec, type_spec
from flytelike.errors import ValueConversionError

# These annotations are evaluated lazily (from __future__), so the classes live at module level, as in user code.


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Inner:
    x: int
    tags: list[str]


@dataclasses.dataclass
class Outer:
    inner: Inner
    color: Color | None = None


class Model(pydantic.BaseModel):
    a: int
    b: str = "x"


@pytest.mark.parametrize(
    ("annotation", "kind", "shown"),
    [
        (int, "int", "int"),
        (float, "float", "float"),
        (str, "str", "str"),
        (bool, "bool", "bool"),
        (bytes, "bytes", "bytes"),
        (dt.datetime, "datetime", "datetime"),
        (dt.timedelta, "timedelta", "timedelta"),
        (Color, "enum", "Color"),
        (list[int], "list", "list[int]"),
        (dict[str, float], "dict", "dict[str, float]"),
        (int | None, "optional", "int | None"),
        (Optional[str], "optional", "str | None"),  # noqa: UP045 - the spelling under test
        (Union[int, str], "union", "int | str"),  # noqa: UP007 - the spelling under test
        (int | str | None, "optional", "int | str | None"),
        (Outer, "dataclass", "Outer"),
        (Model, "model", "Model"),
        (fl.File, "file", "file"),
        (fl.Dir, "dir", "dir"),
        (list[dict[str, list[Outer]]], "list", "list[dict[str, list[Outer]]]"),
        (Annotated[int, "metadata"], "int", "int"),
        (None, "none", "none"),
    ],
)
def test_supported_annotations(annotation: object, kind: str, shown: str) -> None:
    spec = type_spec(annotation, where="t(x)")
    assert spec.kind == kind
    assert str(spec) == shown


def test_dataclass_spec_lists_fields_in_order() -> None:
    spec = type_spec(Outer, where="t(x)")
    assert spec.field_names == ("inner", "color")
    assert [str(a) for a in spec.args] == ["Inner", "Color | None"]
    assert spec == type_spec(Outer, where="elsewhere")


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        (set[int], "unsupported"),
        (frozenset[int], "unsupported"),
        (tuple, "tuples"),
        (tuple[int, str], "tuples"),
        (Any, "Any"),
        (object, "Any"),
        (list, "bare"),
        (dict, "bare"),
        (dict[int, str], "keys must be str"),
        (list[Any], "Any"),
        (dt.date, "datetime"),
        (complex, "unsupported"),
        (typing.Literal["a"], "unsupported"),
        (Callable[[int], int], "unsupported"),
        (int | set[int], "unsupported"),
    ],
)
def test_unsupported_annotations(annotation: object, problem: str) -> None:
    with pytest.raises(SpecError) as info:
        type_spec(annotation, where="t(x)")
    assert info.value.field.startswith("t(x)")
    assert problem in info.value.problem
    assert "list[T]" in str(info.value.accepted)  # names the supported alternatives


# --- unsupported annotations are caught when a task is defined ---


def _set_input(x: set[int]) -> int: ...
def _tuple_input(x: tuple) -> int: ...  # type: ignore[type-arg]
def _any_input(x: Any) -> int: ...
def _missing_input(x) -> int: ...  # type: ignore[no-untyped-def]
def _star_args(*args: int) -> int: ...
def _star_kwargs(**kwargs: int) -> int: ...
def _positional_only(x: int, /) -> int: ...
def _set_output() -> set[int]: ...
def _missing_output(x: int): ...  # type: ignore[no-untyped-def]
def _unresolvable(x: NoSuchType) -> int: ...  # type: ignore[name-defined]  # noqa: F821
def _variadic_tuple_output() -> tuple[int, ...]: ...
def _bad_default(x: int = "one") -> int: ...  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("fn", "field", "value"),
    [
        (_set_input, "defs._set_input(x)", "set[int]"),
        (_tuple_input, "defs._tuple_input(x)", "tuple"),
        (_any_input, "defs._any_input(x)", "Any"),
        (_missing_input, "defs._missing_input(x)", "x"),
        (_star_args, "defs._star_args(args)", "*args:"),
        (_star_kwargs, "defs._star_kwargs(kwargs)", "**kwargs:"),
        (_positional_only, "defs._positional_only(x)", "x:"),
        (_set_output, "defs._set_output -> o0", "set[int]"),
        (_missing_output, "defs._missing_output -> ?", None),
        (_unresolvable, "defs._unresolvable annotations", "name 'NoSuchType' is not defined"),
        (_variadic_tuple_output, "defs._variadic_tuple_output ->", "tuple[int, ...]"),
        (_bad_default, "defs._bad_default(x) default", "one"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_bad_signatures_fail_at_definition(fn: Callable[..., Any], field: str, value: object) -> None:
    env = fl.TaskEnvironment(name="defs")
    with pytest.raises(SpecError) as info:
        env.task(fn)
    e = info.value
    assert e.field == field
    # the parameter's text spells its annotation as written ("x: 'int'" under postponed evaluation)
    assert e.value == value or (value is not None and str(e.value).startswith(str(value)))
    assert e.field in str(e)
    assert e.accepted, f"{e} names no accepted alternative"
    assert fn.__name__ not in env.tasks


# --- outputs ---


def test_outputs() -> None:
    def none() -> None: ...
    def one() -> int: ...
    def two() -> tuple[int, str]: ...
    def optional() -> int | None: ...

    assert Interface.of(none, task="t").outputs == ()
    assert [(p.name, str(p.type)) for p in Interface.of(one, task="t").outputs] == [("o0", "int")]
    assert [(p.name, str(p.type)) for p in Interface.of(two, task="t").outputs] == [("o0", "int"), ("o1", "str")]
    assert [str(p.type) for p in Interface.of(optional, task="t").outputs] == ["int | None"]


def test_check_outputs_and_result() -> None:
    def two() -> tuple[int, float]: ...
    def one() -> float: ...
    def none() -> None: ...

    i = Interface.of(two, task="e.two")
    assert i.check_outputs((1, 2), task="e.two") == {"o0": 1, "o1": 2.0}
    assert i.result({"o0": 1, "o1": 2.0}) == (1, 2.0)
    with pytest.raises(ValueConversionError, match="tuple of 2"):
        i.check_outputs(1, task="e.two")
    with pytest.raises(ValueConversionError, match=r"e\.two -> o1"):
        i.check_outputs((1, "x"), task="e.two")
    j = Interface.of(one, task="e.one")
    assert j.check_outputs(3, task="e.one") == {"o0": 3.0}
    assert j.result({"o0": 3.0}) == 3.0
    k = Interface.of(none, task="e.none")
    assert k.check_outputs(None, task="e.none") == {}
    assert k.result({}) is None
    with pytest.raises(ValueConversionError, match="-> None"):
        k.check_outputs(1, task="e.none")


# --- binding call arguments ---


def _bind_target(a: int, b: float = 1.0, *, c: str = "x", d: list[int] | None = None) -> str: ...


@pytest.fixture
def iface() -> Interface:
    return Interface.of(_bind_target, task="bind.f")


def test_bind_fills_defaults(iface: Interface) -> None:
    assert iface.bind((1,), {}, task="bind.f") == {"a": 1, "b": 1.0, "c": "x", "d": None}
    assert iface.bind((1, 2), {"c": "y", "d": [1]}, task="bind.f") == {"a": 1, "b": 2.0, "c": "y", "d": [1]}
    assert iface.bind((), {"a": 1}, task="bind.f")["a"] == 1


def test_bind_input_order_and_defaults_recorded(iface: Interface) -> None:
    assert [p.name for p in iface.inputs] == ["a", "b", "c", "d"]
    assert [p.required for p in iface.inputs] == [True, False, False, False]
    assert iface.input("c") is not None
    assert iface.input("zz") is None


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required input 'a'"),
        ((1,), {"z": 1}, "unexpected input 'z'"),
        ((1,), {"a": 2}, "'a' twice"),
        (("1",), {}, r"bind\.f\(a\): expected int, got str"),
        ((True,), {}, r"bind\.f\(a\): expected int, got bool"),
        ((1, "x"), {}, r"bind\.f\(b\): expected float"),
        ((1,), {"d": [1, "x"]}, r"bind\.f\(d\)\[1\]: expected int"),
        ((1, 2, "z"), {}, "2 positional inputs but 3"),  # c is keyword-only, as in Python
    ],
)
def test_bind_errors_name_task_and_input(
    iface: Interface, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueConversionError, match=message) as info:
        iface.bind(args, kwargs, task="bind.f")
    assert "bind.f" in str(info.value)
    assert isinstance(info.value, TypeError)


# --- checking values ---


def check(annotation: object, value: object) -> Any:
    return type_spec(annotation, where="w").check(value, "t(x)")


def test_int_widens_to_float() -> None:
    result = check(float, 1)
    assert result == 1.0
    assert type(result) is float
    assert check(list[float], [1, 2.5]) == [1.0, 2.5]


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (int, True),
        (float, True),
        (bool, 1),
        (int, 1.0),
        (str, b"x"),
        (bytes, bytearray(b"x")),
        (dt.datetime, dt.date(2024, 1, 1)),
        (Color, "red"),
        (fl.File, "x.csv"),
        (fl.File, fl.Dir("x")),
        (list[int], {1, 2}),
        (dict[str, int], {1: 2}),
        (Outer, {"inner": {"x": 1, "tags": []}}),
        (Outer, Outer(Inner("x", []))),  # type: ignore[arg-type]
        (Model, {"a": "not a number"}),
        (Model, 3),
        (int | str, 1.5),
        (type(None), 0),
    ],
)
def test_mismatches_rejected(annotation: object, value: object) -> None:
    with pytest.raises(ValueConversionError) as info:
        check(annotation, value)
    assert str(info.value).startswith("t(x)")


def test_nested_mismatch_names_the_path() -> None:
    with pytest.raises(ValueConversionError, match=r"t\(x\)\.inner\.x: expected int"):
        check(Outer, Outer(Inner("x", [])))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("annotation", "value", "result_type"),
    [
        (int | float, 1, int),
        (float | int, 1, int),  # the exact class is picked before widening
        (float | int, 1.5, float),
        (bool | int, True, bool),
        (int | bool, True, bool),
        (int | str, "1", str),
        (int | Model, {"a": 1}, Model),
        (Optional[int], None, type(None)),  # noqa: UP045
    ],
)
def test_union_picks_exact_class_first(annotation: object, value: object, result_type: type) -> None:
    assert type(check(annotation, value)) is result_type


def test_models_from_dicts_and_instances() -> None:
    m = check(Model, {"a": 1})
    assert m == Model(a=1, b="x")
    same = Model(a=2)
    assert check(Model, same) is same


def test_values_conformed() -> None:
    assert check(list[int], (1, 2)) == [1, 2]
    assert check(dict[str, list[float]], {"a": [1]}) == {"a": [1.0]}
    assert check(Color, Color.RED) is Color.RED
    f = fl.File("s3://bucket/x.csv", format="csv")
    assert check(fl.File, f) is f
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert check(dt.datetime, when) is when
    outer = Outer(Inner(1, ["a"]), Color.BLUE)
    assert check(Outer, outer) is outer


def test_type_spec_equality_and_hash() -> None:
    a = type_spec(list[int], where="a")
    b = type_spec(list[int], where="b")
    assert a == b
    assert hash(a) == hash(b)
    assert a != type_spec(list[float], where="c")
    assert isinstance(a, TypeSpec)


# --- string annotations (`from __future__ import annotations` in the user's module) ---


def test_string_annotations_in_a_user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = textwrap.dedent(
        """
        from __future__ import annotations

        import dataclasses
        import enum

        import flytelike as fl

        env = fl.TaskEnvironment(name="future")


        class Mode(enum.Enum):
            FAST = "fast"


        @dataclasses.dataclass
        class Point:
            x: float
            y: float
            label: str | None = None


        @env.task
        async def plot(points: list[Point], mode: Mode | None = None, out: fl.File | None = None) -> tuple[int, str]:
            return len(points), str(mode)
        """
    )
    path = tmp_path / "future_tasks.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("future_tasks", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "future_tasks", module)
    spec.loader.exec_module(module)
    interface = module.plot.interface
    assert [(p.name, str(p.type)) for p in interface.inputs] == [
        ("points", "list[Point]"),
        ("mode", "Mode | None"),
        ("out", "file | None"),
    ]
    assert [str(p.type) for p in interface.outputs] == ["int", "str"]
    point_spec = interface.inputs[0].type.args[0]
    assert point_spec.field_names == ("x", "y", "label")
    assert interface.bind(([module.Point(1, 2)],), {}, task="future.plot")["points"] == [module.Point(1.0, 2.0)]


def test_union_order_is_kept_whatever_was_seen_before() -> None:
    # Regression: unions compare equal in any order, and a cache keyed on the annotation returned the spec of
    # whichever order was seen first.
    assert str(type_spec(str | int | None, where="a")) == "str | int | None"
    assert str(type_spec(int | str | None, where="b")) == "int | str | None"
    assert str(type_spec(list[float | int], where="c")) == "list[float | int]"
    assert str(type_spec(list[int | float], where="d")) == "list[int | float]"
    assert type_spec(int | str, where="e") != type_spec(str | int, where="f")
