"""Codecs of records: dataclasses field by field, pydantic models through their JSON form.

A dataclass becomes a Record whose fields are encoded by their declared types, so every field round-trips
exactly. A pydantic model becomes a Record built from ``model_dump(mode="json", by_alias=True)``, each JSON value
stored as the literal of its JSON kind (str, int, float, bool, None, list, dict), and comes back through
``model_validate``; the model's JSON Schema is in its RecordType.
"""

from __future__ import annotations

from typing import Any

from flytelike._proto.core.v1 import literals_pb2
from flytelike._serde._codecs import Codec, InvalidValueError, MismatchError, codec, expect, register
from flytelike._types import TypeSpec

__all__ = ["dataclass_codec", "model_codec"]

Literal = literals_pb2.Literal
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def dataclass_codec(spec: TypeSpec) -> Codec:
    """Encode a dataclass instance (exactly of the declared class) field by field."""
    cls = spec.py
    assert cls is not None
    fields = [(name, codec(field_spec)) for name, field_spec in zip(spec.field_names, spec.args, strict=True)]
    encoders = [(name, c.encode) for name, c in fields]
    decoders = [(name, c.decode) for name, c in fields]
    names = frozenset(spec.field_names)

    def encode(value: Any, out: Literal) -> None:
        record = out.record_value
        record.SetInParent()  # a dataclass without fields is still a record
        stored = record.fields
        for name, encode_field in encoders:
            try:
                encode_field(getattr(value, name), stored[name])
            except MismatchError as e:
                e.path.append(f".{name}")
                raise

    def decode(lit: Literal) -> Any:
        expect(lit, "record_value", spec)
        stored = lit.record_value.fields
        kwargs: dict[str, Any] = {}
        for name, decode_field in decoders:
            if name in stored:
                try:
                    kwargs[name] = decode_field(stored[name])
                except MismatchError as e:
                    e.path.append(f".{name}")
                    raise
        if len(kwargs) != len(stored):
            unknown = sorted(set(stored) - names)
            raise InvalidValueError(spec, unknown, f"names fields {spec} does not have")
        try:
            return cls(**kwargs)
        except Exception as e:  # a missing field (TypeError), or whatever the class's own __post_init__ raises
            raise InvalidValueError(spec, kwargs, f"cannot be rebuilt: {type(e).__name__}: {e}") from None

    return Codec(encode, decode)


def model_codec(spec: TypeSpec) -> Codec:
    """Encode a pydantic model instance (or a dict it validates) through its JSON form."""
    cls: Any = spec.py
    assert cls is not None

    def encode(value: Any, out: Literal) -> None:
        if not isinstance(value, cls):  # a dict in a model field of a dataclass is checked, not conformed
            value = cls.model_validate(value)
        try:
            data = value.model_dump(mode="json", by_alias=True)
        except Exception as e:  # pydantic's serialization errors (e.g. bytes that are not UTF-8) share no base
            raise InvalidValueError(spec, value, f"has no JSON form: {type(e).__name__}: {e}") from None
        record = out.record_value
        record.SetInParent()
        stored = record.fields
        for key, item in data.items():
            try:
                _encode_json(item, stored[key])
            except MismatchError as e:
                e.path.append(f".{key}")
                e.spec = spec
                raise

    def decode(lit: Literal) -> Any:
        expect(lit, "record_value", spec)
        stored = lit.record_value.fields
        try:
            data = {key: _decode_json(stored[key]) for key in sorted(stored)}
        except MismatchError as e:
            e.spec = spec
            raise
        try:
            return cls.model_validate(data)
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            raise InvalidValueError(spec, data, f"is not a valid {spec}: {e}") from None

    return Codec(encode, decode)


def _encode_json(value: Any, out: Literal) -> None:
    try:
        _encode_json_value(value, out)
    except (ValueError, UnicodeError) as e:  # text with lone surrogates is not UTF-8
        raise InvalidValueError("model field", value, f"cannot be stored: {e}") from None


def _encode_json_value(value: Any, out: Literal) -> None:
    t = type(value)
    if t is str:
        out.str_value = value
    elif t is bool:
        out.bool_value = value
    elif t is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidValueError("model field", value, "is outside the signed 64-bit range an int literal holds")
        out.int_value = value
    elif t is float:
        out.float_value = value
    elif value is None:
        out.none_value.SetInParent()
    elif t is list:
        items = out.list_value
        items.SetInParent()
        add = items.literals.add
        for i, item in enumerate(value):
            try:
                _encode_json_value(item, add())
            except MismatchError as e:
                e.path.append(f"[{i}]")
                raise
    elif t is dict:
        entries = out.dict_value
        entries.SetInParent()
        stored = entries.literals
        for key, item in value.items():
            try:
                _encode_json_value(item, stored[key])
            except MismatchError as e:
                e.path.append(f"[{key!r}]")
                raise
    else:
        raise InvalidValueError("model field", value, f"is a {t.__name__}, which model_dump(mode='json') never returns")


def _decode_json(lit: Literal) -> Any:
    which = lit.WhichOneof("value")
    match which:
        case "str_value" | "bool_value" | "int_value" | "float_value":
            return getattr(lit, which)
        case "none_value":
            return None
        case "list_value":
            return [_decode_json(item) for item in lit.list_value.literals]
        case "dict_value":
            stored = lit.dict_value.literals
            return {key: _decode_json(stored[key]) for key in sorted(stored)}
    raise MismatchError("JSON value", lit, got=f"a literal holding {which}" if which else "an empty literal")


register("dataclass", dataclass_codec)
register("model", model_codec)
