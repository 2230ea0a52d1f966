"""The static type of a value, as a protobuf LiteralType, from a :class:`~flytelike._types.TypeSpec`.

Also the variant tags of unions, which the value codecs share: a union value names its variant by the variant's
type string (``"int"``, ``"list[str]"``, ``"Point"``), and ``"none"`` for the None of ``T | None``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import warnings
from typing import Any, cast

from flytelike._proto.core.v1 import types_pb2
from flytelike._types import TypeSpec
from flytelike.errors import SpecError

__all__ = ["NONE_TAG", "literal_type", "qualified_name", "union_variants"]

NONE_TAG = "none"

LiteralType = types_pb2.LiteralType
_SIMPLE = {
    "none": LiteralType.NONE,
    "int": LiteralType.INTEGER,
    "float": LiteralType.FLOAT,
    "str": LiteralType.STRING,
    "bool": LiteralType.BOOLEAN,
    "bytes": LiteralType.BINARY,
    "datetime": LiteralType.DATETIME,
    "timedelta": LiteralType.DURATION,
}
_NONE_SPEC = TypeSpec("none")

_TYPES: dict[TypeSpec, types_pb2.LiteralType] = {}
_VARIANTS: dict[TypeSpec, tuple[tuple[str, TypeSpec], ...]] = {}


def qualified_name(cls: type) -> str:
    """``<module>.<QualName>``, the name records and enums carry on the wire."""
    return f"{cls.__module__}.{cls.__qualname__}"


def union_variants(spec: TypeSpec) -> tuple[tuple[str, TypeSpec], ...]:
    """The ``(tag, variant)`` pairs of a union or optional, in declaration order, ``"none"`` last for optionals.

    ``A | B | None`` is one union of three variants, not an optional of a union, so both spellings of the same
    type have one wire form.

    Raises:
        SpecError: two variants print as the same type (for example two classes named ``Point`` from different
            modules), so a value could not say which one it holds.
    """
    cached = _VARIANTS.get(spec)
    if cached is not None:
        return cached
    if spec.kind == "optional":
        inner = spec.args[0]
        variants = (*(inner.args if inner.kind == "union" else (inner,)), _NONE_SPEC)
    else:
        variants = spec.args
    tags = [str(v) for v in variants]
    if len(set(tags)) != len(tags):
        raise SpecError(
            "union",
            str(spec),
            "two variants have the same type name, so a value could not say which it holds",
            accepted="variants with distinct class names",
        )
    result = tuple(zip(tags, variants, strict=True))
    _VARIANTS[spec] = result
    return result


def literal_type(spec: TypeSpec) -> types_pb2.LiteralType:
    """The LiteralType of ``spec`` (a new message the caller may modify).

    Example:
        >>> from flytelike._types import type_spec
        >>> literal_type(type_spec(list[int], where="x")).collection_type.simple == LiteralType.INTEGER
        True
    """
    cached = _TYPES.get(spec)
    if cached is None:
        cached = _TYPES[spec] = _build(spec)
    out = LiteralType()
    out.CopyFrom(cached)
    return out


def _build(spec: TypeSpec) -> types_pb2.LiteralType:
    kind = spec.kind
    simple = _SIMPLE.get(kind)
    if simple is not None:
        return LiteralType(simple=simple)
    match kind:
        case "list":
            return LiteralType(collection_type=literal_type(spec.args[0]))
        case "dict":
            return LiteralType(map_value_type=literal_type(spec.args[0]))
        case "optional" | "union":
            out = LiteralType()
            out.union_type.SetInParent()
            for tag, variant in union_variants(spec):
                entry = out.union_type.variants.add()
                entry.CopyFrom(literal_type(variant))
                entry.structure.tag = tag
            return out
        case "enum":
            cls = cast("type[enum.Enum]", spec.py)
            # Members travel by name: names are always unique strings, whatever the members' values are.
            names = [member.name for member in cls]
            return LiteralType(enum_type=types_pb2.EnumType(values=names, name=qualified_name(cls)))
        case "file" | "dir":
            dimensionality = types_pb2.BlobType.SINGLE if kind == "file" else types_pb2.BlobType.MULTIPART
            return LiteralType(blob=types_pb2.BlobType(dimensionality=dimensionality))
        case "dataclass":
            return LiteralType(simple=LiteralType.STRUCT, record=_dataclass_record(spec))
        case "model":
            return LiteralType(simple=LiteralType.STRUCT, record=_model_record(spec))
    raise AssertionError(f"unhandled TypeSpec kind {kind!r}")


def _dataclass_record(spec: TypeSpec) -> types_pb2.RecordType:
    cls = spec.py
    assert cls is not None
    defaults = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    record = types_pb2.RecordType(name=qualified_name(cls), kind=types_pb2.RecordType.DATACLASS)
    for name, field_spec in zip(spec.field_names, spec.args, strict=True):
        record.fields.add(name=name, type=literal_type(field_spec), has_default=name in defaults)
    record.json_schema = _json_schema(cls, model=False)
    return record


def _model_record(spec: TypeSpec) -> types_pb2.RecordType:
    cls: Any = spec.py
    assert cls is not None
    # A model's fields may have any type pydantic supports, and its values travel in their JSON form, so the
    # fields carry names only; the JSON Schema describes their types.
    record = types_pb2.RecordType(name=qualified_name(cls), kind=types_pb2.RecordType.PYDANTIC)
    for name, info in cls.model_fields.items():
        record.fields.add(name=info.alias or name, has_default=not info.is_required())
    record.json_schema = _json_schema(cls, model=True)
    return record


def _json_schema(cls: Any, *, model: bool) -> str:
    # pydantic is imported lazily: only templates with dataclass inputs need it here, and importing it costs
    # more start-up time than the rest of the value codecs together.
    import pydantic
    from pydantic.json_schema import PydanticJsonSchemaWarning

    try:
        with warnings.catch_warnings():
            # Defaults JSON cannot show only leave the schema without them; a warning would fail strict runs.
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            schema = cls.model_json_schema() if model else pydantic.TypeAdapter(cls).json_schema()
    except pydantic.PydanticUserError:
        return ""  # a field pydantic cannot describe: the record still lists every field and its type
    # Sorted keys and fixed separators: the same class gives the same text, and so the same template bytes.
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
