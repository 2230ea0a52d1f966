"""The type model of task inputs and outputs, read from Python annotations.

Each supported annotation becomes a :class:`TypeSpec`, a small tree that serialization maps to the wire format
and that checks values crossing a task boundary. An annotation outside the supported set is rejected when the task
is defined, never silently pickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flytelike._files import Dir, File
from flytelike.errors import SpecError, ValueConversionError

__all__ = ["Kind", "TypeSpec", "type_spec"]

Kind = Literal[
    "none", "int", "float", "str", "bool", "bytes", "datetime", "timedelta", "enum", "list", "dict", "optional",
    "union", "dataclass", "model", "file", "dir",
]  # fmt: skip

_SCALARS: dict[object, Kind] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    bytes: "bytes",
    dt.datetime: "datetime",
    dt.timedelta: "timedelta",
    File: "file",
    Dir: "dir",
    type(None): "none",
    None: "none",
}

SUPPORTED = (
    "int, float, str, bool, bytes, datetime, timedelta, an Enum, list[T], dict[str, T], T | None, unions, "
    "dataclasses, pydantic models, fl.File, fl.Dir"
)


def _is_model(tp: object) -> bool:
    # Checked by shape rather than by importing pydantic, which would slow down `import flytelike`.
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_dump")


@dataclass(frozen=True, slots=True, eq=False)
class TypeSpec:
    """One node of the type tree.

    Attributes:
        kind: the node's kind.
        args: element types (list: one; dict: the value type; optional: one; union: the variants;
            dataclass: its field types in declaration order).
        py: the Python class for enum, dataclass and model kinds.
        field_names: the field names of a dataclass, matching ``args``.
    """

    kind: Kind
    args: tuple[TypeSpec, ...] = ()
    py: type | None = None
    field_names: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypeSpec) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple[object, ...]:
        return (self.kind, tuple(a.key for a in self.args), self.py, self.field_names)

    def __str__(self) -> str:
        match self.kind:
            case "list":
                return f"list[{self.args[0]}]"
            case "dict":
                return f"dict[str, {self.args[0]}]"
            case "optional":
                return f"{self.args[0]} | None"
            case "union":
                return " | ".join(str(a) for a in self.args)
            case "enum" | "dataclass" | "model":
                assert self.py is not None
                return self.py.__qualname__
            case _:
                return self.kind

    def check(self, value: object, where: str) -> Any:
        """Return ``value`` conformed to this type (ints widen to float, dicts become models), or raise.

        Raises:
            ValueConversionError: naming ``where`` (the input or output), the expected type and the value.
        """
        return _CHECKERS[self.kind](self, value, where)


def _mismatch(spec: TypeSpec, value: object, where: str) -> ValueConversionError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ValueConversionError(f"{where}: expected {spec}, got {type(value).__name__} {shown}")


def _exact(*classes: type) -> Callable[[TypeSpec, object, str], Any]:
    def check(spec: TypeSpec, value: object, where: str) -> Any:
        if type(value) in classes or (isinstance(value, classes) and not isinstance(value, bool)):
            return value
        raise _mismatch(spec, value, where)

    return check


def _check_float(spec: TypeSpec, value: object, where: str) -> Any:
    if type(value) is float:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise ValueConversionError(f"{where}: float value {shown} is too large for a 64-bit float") from None
    raise _mismatch(spec, value, where)


def _check_bool(spec: TypeSpec, value: object, where: str) -> Any:
    if isinstance(value, bool):
        return value
    raise _mismatch(spec, value, where)


def _check_enum(spec: TypeSpec, value: object, where: str) -> Any:
    assert spec.py is not None
    if isinstance(value, spec.py):
        return value
    raise _mismatch(spec, value, where)


def _check_list(spec: TypeSpec, value: object, where: str) -> Any:
    if not isinstance(value, list | tuple):
        raise _mismatch(spec, value, where)
    item = spec.args[0]
    return [item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _check_dict(spec: TypeSpec, value: object, where: str) -> Any:
    if not isinstance(value, dict):
        raise _mismatch(spec, value, where)
    item = spec.args[0]
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ValueConversionError(f"{where}: dict keys must be str, got {type(k).__name__} {k!r}")
        out[k] = item.check(v, f"{where}[{k!r}]")
    return out


def _check_optional(spec: TypeSpec, value: object, where: str) -> Any:
    return None if value is None else spec.args[0].check(value, where)


def _check_union(spec: TypeSpec, value: object, where: str) -> Any:
    # Exact class matches first, so that 1 stays an int in `int | float` and True a bool in `bool | int`.
    for variant in spec.args:
        if variant.kind in ("int", "float", "str", "bool", "bytes") and type(value) is _PY[variant.kind]:
            return value
    for variant in spec.args:
        try:
            return variant.check(value, where)
        except ValueConversionError:
            continue
    raise _mismatch(spec, value, where)


def _check_dataclass(spec: TypeSpec, value: object, where: str) -> Any:
    if type(value) is not spec.py:
        raise _mismatch(spec, value, where)
    for name, field_spec in zip(spec.field_names, spec.args, strict=True):
        field_spec.check(getattr(value, name), f"{where}.{name}")
    return value


def _check_model(spec: TypeSpec, value: object, where: str) -> Any:
    assert spec.py is not None
    if isinstance(value, spec.py):
        return value
    if isinstance(value, dict):
        try:
            return spec.py.model_validate(value)  # type: ignore[attr-defined]
        except ValueError as e:
            raise ValueConversionError(f"{where}: not a valid {spec}: {e}") from None
    raise _mismatch(spec, value, where)


def _check_none(spec: TypeSpec, value: object, where: str) -> Any:
    if value is None:
        return None
    raise _mismatch(spec, value, where)


def _check_blob(spec: TypeSpec, value: object, where: str) -> Any:
    cls = File if spec.kind == "file" else Dir
    if type(value) is cls:
        return value
    raise _mismatch(spec, value, where)


_PY: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "bytes": bytes}
_CHECKERS: dict[str, Callable[[TypeSpec, object, str], Any]] = {
    "none": _check_none,
    "int": _exact(int),
    "float": _check_float,
    "str": _exact(str),
    "bool": _check_bool,
    "bytes": _exact(bytes),
    "datetime": _exact(dt.datetime),
    "timedelta": _exact(dt.timedelta),
    "enum": _check_enum,
    "list": _check_list,
    "dict": _check_dict,
    "optional": _check_optional,
    "union": _check_union,
    "dataclass": _check_dataclass,
    "model": _check_model,
    "file": _check_blob,
    "dir": _check_blob,
}

_cache: dict[tuple[object, str], TypeSpec] = {}


def type_spec(annotation: object, *, where: str) -> TypeSpec:
    """The TypeSpec of an annotation, or a SpecError naming ``where`` and listing what is supported."""
    # Unions compare equal whatever their order (int | str == str | int), but the order is part of the spec
    # (variants are tried in order, and it is what goes on the wire); the repr keeps them apart in the cache.
    key = (annotation, repr(annotation))
    try:
        cached = _cache.get(key)
    except TypeError:  # unhashable annotation objects are simply not cached
        cached = None
    if cached is not None:
        return cached
    spec = _build(annotation, where, ())
    with contextlib.suppress(TypeError):
        _cache[key] = spec
    return spec


def _unsupported(annotation: object, where: str, why: str = "") -> SpecError:
    shown = repr(annotation) if typing.get_origin(annotation) else getattr(annotation, "__qualname__", repr(annotation))
    return SpecError(where, shown, why or "unsupported type annotation", accepted=SUPPORTED)


def _build(annotation: object, where: str, seen: tuple[type, ...]) -> TypeSpec:
    if annotation in _SCALARS and (annotation is None or isinstance(annotation, type)):
        return TypeSpec(_SCALARS[annotation])
    if annotation is dt.date:
        raise _unsupported(annotation, where, "date is ambiguous across time zones; use datetime")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _build(args[0], where, seen)
    if origin is list:
        if len(args) != 1:
            raise _unsupported(annotation, where, "a list needs its element type, e.g. list[int]")
        return TypeSpec("list", (_build(args[0], f"{where}[]", seen),))
    if origin is dict:
        if len(args) != 2 or args[0] is not str:
            raise _unsupported(annotation, where, "dict keys must be str and the value type given: dict[str, T]")
        return TypeSpec("dict", (_build(args[1], f"{where}[]", seen),))
    if origin is typing.Union or origin is types.UnionType:
        variants = [a for a in args if a is not type(None)]
        inner = (
            _build(variants[0], where, seen)
            if len(variants) == 1
            else TypeSpec("union", tuple(_build(v, where, seen) for v in variants))
        )
        return TypeSpec("optional", (inner,)) if len(variants) < len(args) else inner
    if annotation in (list, dict, tuple, typing.Any, object) or origin is tuple:
        why = {tuple: "tuples are not supported as values; use list[T] or a dataclass"}.get(
            origin or annotation,  # type: ignore[arg-type]
            "a bare or Any type cannot be checked or serialized; give the element types",
        )
        raise _unsupported(annotation, where, why)
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return TypeSpec("enum", py=annotation)
        if dataclasses.is_dataclass(annotation):
            if annotation in seen:
                raise _unsupported(annotation, where, "recursive dataclasses are not supported")
            try:
                hints = typing.get_type_hints(annotation)
            except NameError as e:
                raise _unsupported(annotation, where, f"cannot resolve a field annotation: {e}") from None
            names = tuple(f.name for f in dataclasses.fields(annotation) if f.init)
            fields = tuple(_build(hints[n], f"{where}.{n}", (*seen, annotation)) for n in names)
            return TypeSpec("dataclass", fields, py=annotation, field_names=names)
        if _is_model(annotation):
            return TypeSpec("model", py=annotation)
    raise _unsupported(annotation, where)
