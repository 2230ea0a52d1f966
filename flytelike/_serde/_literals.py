"""Python values <-> protobuf literals, driven by the task's :class:`~flytelike._types.TypeSpec`.

Every supported kind round-trips exactly: floats keep ``nan``/``inf``/``-0.0``, naive and aware datetimes stay
distinct (aware ones keep their UTC offset, not their zone name), timedeltas keep their microseconds, Enum members
travel by member name, lists and ``dict[str, T]`` recursively (dicts come back with sorted keys: protobuf maps
have no order), unions with the tag of the variant they hold, dataclasses field by field, pydantic models
through their JSON form, files and directories as blob references. Values the wire format cannot hold (ints
beyond 64 bits, strings with lone surrogates, datetimes and timedeltas outside protobuf's Timestamp and Duration
ranges) are rejected, never truncated.

The codecs themselves are in :mod:`flytelike._serde._codecs` and :mod:`flytelike._serde._records`; this module is
the API the template builder and the executor call.

Example:
    >>> from flytelike._types import type_spec
    >>> spec = type_spec(list[int] | None, where="f(xs)")
    >>> lit = to_literal([1, 2], spec, where="f(xs)")
    >>> lit.union_value.tag, from_literal(lit, spec, where="f(xs)")
    ('list[int]', [1, 2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from flytelike._interface import Param
from flytelike._proto.core.v1 import literals_pb2
from flytelike._serde import _records  # noqa: F401  (importing it registers the dataclass and model codecs)
from flytelike._serde._codecs import Codec, MismatchError, codec, conversion_error
from flytelike._serde._literal_types import literal_type
from flytelike._types import TypeSpec
from flytelike.errors import ValueConversionError

__all__ = [
    "decode_values",
    "encode_values",
    "from_literal",
    "from_literal_map",
    "literal_type",
    "to_literal",
    "to_literal_map",
]


def to_literal(value: Any, spec: TypeSpec, *, where: str) -> literals_pb2.Literal:
    """Encode ``value`` as a literal of type ``spec``.

    Args:
        value: the Python value.
        spec: its declared type.
        where: names the value in errors, e.g. ``"train(lr)"``.

    Raises:
        ValueConversionError: the value does not match ``spec`` or cannot be represented, naming ``where``
            (extended with the path inside the value, e.g. ``train(xs)[2]``), the expected type and the value.
    """
    # TypeSpec.check is the one judge of whether a value is of its type; the codecs only convert what it passed.
    value = spec.check(value, where)
    out = literals_pb2.Literal()
    try:
        codec(spec).encode(value, out)
    except MismatchError as e:
        raise conversion_error(e, where) from None
    return out


def from_literal(literal: literals_pb2.Literal, spec: TypeSpec, *, where: str) -> Any:
    """Decode a literal of type ``spec`` back to its Python value.

    Raises:
        ValueConversionError: the literal does not hold a ``spec`` value, naming ``where``.
    """
    try:
        return codec(spec).decode(literal)
    except MismatchError as e:
        raise conversion_error(e, where) from None


def _param_codecs(params: Sequence[Param]) -> dict[str, Codec]:
    return {p.name: codec(p.type) for p in params}


def _unexpected(where: str, name: str, codecs: Mapping[str, Codec]) -> ValueConversionError:
    names = ", ".join(codecs) or "none"
    return ValueConversionError(f"{where}: unexpected value {name!r}; the names declared are: {names}")


def to_literal_map(values: Mapping[str, Any], params: Sequence[Param], *, where: str) -> literals_pb2.LiteralMap:
    """Encode named values (those of ``params`` present in ``values``) as a LiteralMap.

    Each value is named ``f"{where}({name})"`` in errors, e.g. ``train(lr)`` for ``where="train"``.

    Raises:
        ValueConversionError: a name that is not a param, or a value that does not match its param's type.
    """
    codecs = _param_codecs(params)
    # TypeSpec.check is the one judge of whether a value is of its type; the codecs only convert what it passed.
    checks = {p.name: p.type.check for p in params}
    out = literals_pb2.LiteralMap()
    literals = out.literals
    for name, value in values.items():
        codec = codecs.get(name)
        if codec is None:
            raise _unexpected(where, name, codecs)
        try:
            codec.encode(checks[name](value, f"{where}({name})"), literals[name])
        except MismatchError as e:
            raise conversion_error(e, f"{where}({name})") from None
    return out


def from_literal_map(literals: literals_pb2.LiteralMap, params: Sequence[Param], *, where: str) -> dict[str, Any]:
    """Decode the params present in ``literals``, in the order of ``params``.

    Raises:
        ValueConversionError: a name that is not a param, or a literal that does not match its param's type.
    """
    codecs = _param_codecs(params)
    stored = literals.literals
    out: dict[str, Any] = {}
    for name, param_codec in codecs.items():
        if name in stored:
            try:
                out[name] = param_codec.decode(stored[name])
            except MismatchError as e:
                raise conversion_error(e, f"{where}({name})") from None
    if len(out) != len(stored):
        raise _unexpected(where, min(n for n in stored if n not in codecs), codecs)
    return out


def encode_values(values: Mapping[str, Any], params: Sequence[Param], *, where: str) -> bytes:
    """The deterministic bytes of :func:`to_literal_map`: the same values always give the same bytes."""
    return to_literal_map(values, params, where=where).SerializeToString(deterministic=True)


def decode_values(data: bytes, params: Sequence[Param], *, where: str) -> dict[str, Any]:
    """Decode bytes written by :func:`encode_values`.

    Raises:
        ValueConversionError: the bytes are not a LiteralMap, or a value does not match its param's type.
    """
    try:
        literals = literals_pb2.LiteralMap.FromString(data)
    except DecodeError as e:
        raise ValueConversionError(f"{where}: not serialized values ({type(e).__name__}: {e})") from None
    return from_literal_map(literals, params, where=where)
