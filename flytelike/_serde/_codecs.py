"""The value codecs: per-TypeSpec encoder/decoder closures between Python values and protobuf literals.

Codecs are built once per TypeSpec and cached, so the per-value cost is a few attribute writes and no
reflection. Encoders write into a literal the caller owns, so nested values are never copied, and the path of a
rejected value inside its container (``[3].name``) is assembled only when a value is rejected.

Records (dataclasses and pydantic models) are built by :mod:`flytelike._serde._records`, which registers its
builders here with :func:`register`; :mod:`flytelike._serde._literals` imports both.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flytelike._digest import content_digest
from flytelike._files import Dir, File
from flytelike._proto.core.v1 import literals_pb2, types_pb2
from flytelike._serde._literal_types import union_variants
from flytelike._types import TypeSpec
from flytelike.errors import ValueConversionError

__all__ = ["Codec", "InvalidValueError", "MismatchError", "codec", "conversion_error", "expect", "register", "shown"]

Literal = literals_pb2.Literal
Encoder = Callable[[Any, Literal], None]
Decoder = Callable[[Literal], Any]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# protobuf's Timestamp covers 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z, Duration +-10,000 years;
# values beyond them would encode but break every other reader (the JSON mapping among them).
_TIMESTAMP_MIN, _TIMESTAMP_MAX = -62_135_596_800, 253_402_300_799
_DURATION_MAX = 315_576_000_000
_EPOCH = dt.datetime(1970, 1, 1)
_SINGLE, _MULTIPART = types_pb2.BlobType.SINGLE, types_pb2.BlobType.MULTIPART


class MismatchError(Exception):
    """The value is not of the expected type; a union then tries its next variant."""

    def __init__(self, spec: TypeSpec | str, value: object, detail: str = "", *, got: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.value = value
        self.detail = detail
        self.got = got  # formatted only if the error reaches the user: a union may reject many values first
        self.path: list[str] = []  # segments appended on the way up, innermost first


class InvalidValueError(MismatchError):
    """The value has the expected type but cannot be represented; never retried as another union variant."""


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def conversion_error(e: MismatchError, where: str) -> ValueConversionError:
    """The user-facing error for a rejected value: ``where`` plus the path inside it, the type and the value."""
    place = where + "".join(reversed(e.path))
    if isinstance(e, InvalidValueError):
        return ValueConversionError(f"{place}: {e.spec} value {shown(e.value)} {e.detail}")
    got = e.got if e.got is not None else f"{type(e.value).__name__} {shown(e.value)}"
    return ValueConversionError(f"{place}: expected {e.spec}, got {got}" + (f" ({e.detail})" if e.detail else ""))


@dataclass(frozen=True, slots=True)
class Codec:
    """The encoder (value into a caller-owned literal) and decoder (literal to value) of one TypeSpec."""

    encode: Encoder
    decode: Decoder


_CODECS: dict[TypeSpec, Codec] = {}
# Hashing a TypeSpec rebuilds its key tuple recursively, so hot paths look codecs up by identity first. Entries
# hold the spec itself, which keeps its id from being reused; the size cap bounds specs built on the fly.
_BY_ID: dict[int, tuple[TypeSpec, Codec]] = {}
_BY_ID_LIMIT = 4096


def codec(spec: TypeSpec) -> Codec:
    """The cached codec of ``spec``, built on first use."""
    entry = _BY_ID.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    found = _CODECS.get(spec)
    if found is None:
        found = _CODECS[spec] = _BUILDERS[spec.kind](spec)
    if len(_BY_ID) >= _BY_ID_LIMIT:
        _BY_ID.clear()
    _BY_ID[id(spec)] = (spec, found)
    return found


def expect(lit: Literal, field: str, spec: TypeSpec) -> None:
    """Raise MismatchError unless ``lit`` holds its value in ``field``."""
    if lit.WhichOneof("value") != field:
        which = lit.WhichOneof("value")
        raise MismatchError(f"{spec} ({field})", lit, got=f"a literal holding {which}" if which else "an empty literal")


def _scalar(spec: TypeSpec, field: str) -> Codec:
    def encode(value: Any, out: Literal) -> None:
        try:
            setattr(out, field, value)
        except (ValueError, UnicodeError) as e:  # strings with lone surrogates are not UTF-8
            raise InvalidValueError(spec, value, f"cannot be stored: {e}") from None

    def decode(lit: Literal) -> Any:
        expect(lit, field, spec)
        return getattr(lit, field)

    return Codec(encode, decode)


def _int(spec: TypeSpec) -> Codec:
    def encode(value: Any, out: Literal) -> None:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidValueError(spec, value, "is outside the signed 64-bit range an int literal holds")
        out.int_value = value

    def decode(lit: Literal) -> Any:
        expect(lit, "int_value", spec)
        return lit.int_value

    return Codec(encode, decode)


def _float(spec: TypeSpec) -> Codec:
    def encode(value: Any, out: Literal) -> None:
        if type(value) is not float:
            # An int in a float field of a dataclass is checked but not conformed: it widens here.
            try:
                value = float(value)
            except OverflowError:
                raise InvalidValueError(spec, value, "is too large for a 64-bit float") from None
        out.float_value = value

    def decode(lit: Literal) -> Any:
        expect(lit, "float_value", spec)
        return lit.float_value

    return Codec(encode, decode)


def _datetime(spec: TypeSpec) -> Codec:
    def encode(value: Any, out: Literal) -> None:
        offset = value.utcoffset()
        # Exact integer arithmetic on the wall time, so no float rounding and no overflow near datetime.min/max.
        delta = value.replace(tzinfo=None) - _EPOCH
        if offset is not None:
            if offset.microseconds:
                raise InvalidValueError(spec, value, "has a UTC offset that is not a whole number of seconds")
            delta -= offset
        seconds = delta.days * 86_400 + delta.seconds
        if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX:
            raise InvalidValueError(spec, value, "is outside the years 1-9999 in UTC that a protobuf Timestamp holds")
        stored = out.datetime_value
        stored.instant.seconds = seconds
        stored.instant.nanos = delta.microseconds * 1000
        if offset is not None:
            stored.utc_offset_seconds = offset.days * 86_400 + offset.seconds

    def decode(lit: Literal) -> Any:
        expect(lit, "datetime_value", spec)
        stored = lit.datetime_value
        micros, rest = divmod(stored.instant.nanos, 1000)
        if rest:
            raise InvalidValueError(spec, stored.instant, "has nanoseconds; a datetime holds microseconds")
        try:
            if not stored.HasField("utc_offset_seconds"):
                return _EPOCH + dt.timedelta(seconds=stored.instant.seconds, microseconds=micros)
            offset = stored.utc_offset_seconds
            wall = _EPOCH + dt.timedelta(seconds=stored.instant.seconds + offset, microseconds=micros)
            return wall.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
        except (OverflowError, ValueError) as e:
            raise InvalidValueError(spec, stored, f"is not a valid datetime: {e}") from None

    return Codec(encode, decode)


def _timedelta(spec: TypeSpec) -> Codec:
    def encode(value: Any, out: Literal) -> None:
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        # A Duration's seconds and nanos carry the same sign, unlike timedelta's normalised fields.
        seconds, rest = divmod(abs(micros), 1_000_000)
        if seconds > _DURATION_MAX:
            raise InvalidValueError(spec, value, "is longer than the +-10,000 years a protobuf Duration holds")
        sign = -1 if micros < 0 else 1
        stored = out.timedelta_value
        stored.seconds = sign * seconds
        stored.nanos = sign * rest * 1000

    def decode(lit: Literal) -> Any:
        expect(lit, "timedelta_value", spec)
        stored = lit.timedelta_value
        micros, rest = divmod(stored.nanos, 1000)
        if rest:
            raise InvalidValueError(spec, stored, "has nanoseconds; a timedelta holds microseconds")
        return dt.timedelta(seconds=stored.seconds, microseconds=micros)

    return Codec(encode, decode)


def _enum(spec: TypeSpec) -> Codec:
    cls = cast("type[enum.Enum]", spec.py)

    def encode(value: Any, out: Literal) -> None:
        out.enum_value = value.name

    def decode(lit: Literal) -> Any:
        expect(lit, "enum_value", spec)
        try:
            return cls[lit.enum_value]
        except KeyError:
            raise InvalidValueError(spec, lit.enum_value, f"is not a member of {cls.__qualname__}") from None

    return Codec(encode, decode)


def _list(spec: TypeSpec) -> Codec:
    item = codec(spec.args[0])
    encode_item, decode_item = item.encode, item.decode

    def encode(value: Any, out: Literal) -> None:
        stored = out.list_value
        stored.SetInParent()  # an empty list is still a list, not an unset literal
        add = stored.literals.add
        for i, v in enumerate(value):
            try:
                encode_item(v, add())
            except MismatchError as e:
                e.path.append(f"[{i}]")
                raise

    def decode(lit: Literal) -> Any:
        expect(lit, "list_value", spec)
        out = []
        for i, v in enumerate(lit.list_value.literals):
            try:
                out.append(decode_item(v))
            except MismatchError as e:
                e.path.append(f"[{i}]")
                raise
        return out

    return Codec(encode, decode)


def _dict(spec: TypeSpec) -> Codec:
    item = codec(spec.args[0])
    encode_item, decode_item = item.encode, item.decode

    def encode(value: Any, out: Literal) -> None:
        stored = out.dict_value
        stored.SetInParent()
        literals = stored.literals
        for k, v in value.items():
            try:
                target = literals[k]
            except (ValueError, UnicodeError) as e:
                raise InvalidValueError(spec, value, f"has a key that cannot be stored: {e}") from None
            try:
                encode_item(v, target)
            except MismatchError as e:
                e.path.append(f"[{k!r}]")
                raise

    def decode(lit: Literal) -> Any:
        expect(lit, "dict_value", spec)
        literals = lit.dict_value.literals
        out = {}
        # Protobuf maps have no order; sorted keys make the decoded dict the same in every process.
        for k in sorted(literals):
            try:
                out[k] = decode_item(literals[k])
            except MismatchError as e:
                e.path.append(f"[{k!r}]")
                raise
        return out

    return Codec(encode, decode)


def _union(spec: TypeSpec) -> Codec:
    variants = [(tag, variant, codec(variant).encode) for tag, variant in union_variants(spec)]
    by_tag = {tag: codec(variant).decode for tag, variant in union_variants(spec)}
    # A value takes the variant TypeSpec.check gives it: one whose class is exactly the value's first (1 stays an
    # int in `float | int`, True a bool in `int | bool`), else the first that accepts it, as that variant
    # conforms it. Acceptance is TypeSpec.check's alone; this only picks the tag.
    exact: dict[type, tuple[str, Encoder]] = {}
    for tag, variant, encode_variant in variants:
        cls = _EXACT.get(variant.kind)
        if cls is not None:
            exact.setdefault(cls, (tag, encode_variant))

    def encode(value: Any, out: Literal) -> None:
        stored = out.union_value
        chosen = exact.get(type(value))
        if chosen is not None:
            stored.tag = chosen[0]
            chosen[1](value, stored.value)
            return
        for tag, variant, encode_variant in variants:
            try:
                conformed = variant.check(value, str(spec))
            except ValueConversionError:
                continue
            stored.tag = tag
            encode_variant(conformed, stored.value)
            return
        raise MismatchError(spec, value)

    def decode(lit: Literal) -> Any:
        expect(lit, "union_value", spec)
        stored = lit.union_value
        decode_variant = by_tag.get(stored.tag)
        if decode_variant is None:
            raise InvalidValueError(spec, stored.tag, f"is not a variant tag; expected one of {', '.join(by_tag)}")
        return decode_variant(stored.value)

    return Codec(encode, decode)


_EXACT: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "bytes": bytes,
    "none": type(None),
}


def _blob(spec: TypeSpec) -> Codec:
    cls, dimensionality = (File, _SINGLE) if spec.kind == "file" else (Dir, _MULTIPART)

    def encode(value: Any, out: Literal) -> None:
        stored = out.blob_value
        try:
            stored.uri = value.path
            stored.type.format = value.format
        except (ValueError, UnicodeError) as e:  # a path with lone surrogates (undecodable file names) is not UTF-8
            raise InvalidValueError(spec, value, f"cannot be stored: {e}") from None
        stored.type.dimensionality = dimensionality
        if not value.is_remote:
            stored.digest = content_digest(os.fspath(value))

    def decode(lit: Literal) -> Any:
        expect(lit, "blob_value", spec)
        stored = lit.blob_value
        if stored.type.dimensionality != dimensionality:
            raise InvalidValueError(spec, stored.uri, f"is a {'directory' if cls is File else 'single file'} blob")
        try:
            return cls(stored.uri, stored.type.format)
        except ValueError as e:  # File/Dir reject an empty or NUL-containing uri with a SpecError
            raise InvalidValueError(spec, stored.uri, f"is not a valid reference: {e}") from None

    return Codec(encode, decode)


def _none(spec: TypeSpec) -> Codec:
    def encode(value: Any, out: Literal) -> None:
        out.none_value.SetInParent()

    def decode(lit: Literal) -> Any:
        expect(lit, "none_value", spec)
        return None

    return Codec(encode, decode)


_BUILDERS: dict[str, Callable[[TypeSpec], Codec]] = {
    "none": _none,
    "int": _int,
    "float": _float,
    "str": lambda s: _scalar(s, "str_value"),
    "bool": lambda s: _scalar(s, "bool_value"),
    "bytes": lambda s: _scalar(s, "bytes_value"),
    "datetime": _datetime,
    "timedelta": _timedelta,
    "enum": _enum,
    "list": _list,
    "dict": _dict,
    "optional": _union,
    "union": _union,
    "file": _blob,
    "dir": _blob,
}


def register(kind: str, builder: Callable[[TypeSpec], Codec]) -> None:
    """Add the codec builder of a TypeSpec kind (records come from another module)."""
    _BUILDERS[kind] = builder
