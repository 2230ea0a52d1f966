"""Durations as users write them (``"90s"``, ``"1h30m"``, seconds as a number, a timedelta), parsed exactly."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from flytelike.errors import SpecError

__all__ = ["DURATION_EXAMPLE", "parse_duration"]

_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600), "d": Decimal(86400)}
_UNITS["w"] = 7 * _UNITS["d"]
# Patterns as text, compiled (and cached) by re on first use rather than at import: most runs parse no durations
# and declare no secrets.
_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)"
DURATION_EXAMPLE = "'90s', '15m', '2h', '1h30m', '1d', seconds as a number, or a timedelta"
_MAX_SECONDS = Decimal(timedelta.max.total_seconds())


def parse_duration(value: object, *, field: str) -> timedelta:
    """A non-negative duration from ``"1h30m"``-style text, seconds (int/float) or a timedelta.

    Example:
        >>> parse_duration("1h30m", field="timeout")
        datetime.timedelta(seconds=5400)
    """
    if isinstance(value, timedelta):
        seconds = Decimal(value.total_seconds())
    elif isinstance(value, bool):
        raise SpecError(field, value, "a bool is not a duration", accepted=DURATION_EXAMPLE)
    elif isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(field, value, "not a finite duration", accepted=DURATION_EXAMPLE)
        seconds = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        pos, seconds = 0, Decimal(0)
        for m in re.finditer(_PART, text):
            if m.start() != pos:
                break
            seconds += Decimal(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            try:  # a plain number in a string counts seconds, as on a command line
                seconds = Decimal(text)
            except InvalidOperation:
                raise SpecError(field, value, "not a duration", accepted=DURATION_EXAMPLE) from None
            if not seconds.is_finite():
                raise SpecError(field, value, "not a finite duration", accepted=DURATION_EXAMPLE)
    else:
        raise SpecError(field, value, f"a {type(value).__name__} is not a duration", accepted=DURATION_EXAMPLE)
    if seconds < 0:
        raise SpecError(field, value, "must not be negative", accepted=DURATION_EXAMPLE)
    if isinstance(value, timedelta):
        return value  # already exact; the float round trip below could round timedelta.max up and overflow
    try:
        if seconds > _MAX_SECONDS:
            raise OverflowError
        return timedelta(seconds=float(seconds))
    except OverflowError:
        raise SpecError(field, value, "is longer than any run can last", accepted=DURATION_EXAMPLE) from None
