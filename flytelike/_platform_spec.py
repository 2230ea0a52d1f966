"""Parsing ``--with NAME:key=value,...`` into a platform object.

Values are read as JSON first (so lists, objects, numbers, booleans and quoted strings work), then as a bare
string. Commas inside brackets, braces or quotes do not split attributes.

Example:
    >>> from flytelike._platform_spec import parse_platform_spec
    >>> parse_platform_spec("batch:cpu=8,memory=32768,queue=gpu").resources()
    Resources(cpu='8', memory='32Gi')
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from flytelike._platforms import PLATFORM_NAMES, Platform, platform_class
from flytelike.errors import SpecError

__all__ = ["parse_platform_spec"]

_CLOSERS = {"[": "]", "{": "}"}


def _split_top_level(text: str, field: str) -> list[str]:
    """Split on commas that are not inside brackets, braces or quotes."""
    parts: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in _CLOSERS:
            stack.append(_CLOSERS[c])
        elif c in "]}":
            if not stack or stack.pop() != c:
                raise SpecError(field, text, f"unbalanced {c!r} at position {i}", accepted='\'tags={"a":"b"}\'')
        elif c == "," and not stack:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quote or stack:
        raise SpecError(field, text, "unclosed quote or bracket", accepted="balanced quotes and brackets")
    parts.append(text[start:])
    return parts


def _value(raw: str, field: str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise SpecError(field, raw, "the value is nested too deeply", accepted='\'tags={"a":"b"}\'') from None
    except ValueError:
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            return raw[1:-1]
        return raw


def parse_platform_spec(spec: str) -> Platform:
    """Turn ``"batch:cpu=8,memory=32768,gpu=1,queue=q"`` (or just ``"kubernetes"``) into a platform object.

    Raises:
        SpecError: unknown platform, unknown attribute (the message lists the accepted ones), a malformed
            ``key=value`` pair, or a value the platform rejects.
    """
    field = "--with"
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(field, spec, "empty platform spec", accepted=", ".join(sorted(PLATFORM_NAMES)))
    name, _, rest = spec.strip().partition(":")
    cls = platform_class(name.strip().lower())
    if cls is None:
        raise SpecError(field, spec, f"unknown platform {name!r}", accepted=", ".join(sorted(PLATFORM_NAMES)))
    accepted = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for item in _split_top_level(rest, field) if rest.strip() else []:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SpecError(field, spec, f"{item!r} is not key=value", accepted=f"{name}:cpu=8,memory=32768")
        if key not in accepted:
            raise SpecError(field, spec, f"{cls.name} has no attribute {key!r}", accepted=", ".join(accepted))
        if key in kwargs:
            raise SpecError(field, spec, f"{key!r} is given twice", accepted="each attribute once")
        kwargs[key] = _value(raw.strip(), field)
    try:
        return cls(**kwargs)
    except SpecError as e:
        raise SpecError(f"--with {e.field}", e.value, e.problem, accepted=e.accepted) from None
    except TypeError as e:  # a value of the wrong shape that a field's own checks did not catch
        raise SpecError(field, spec, str(e), accepted=", ".join(accepted)) from None
