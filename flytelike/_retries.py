"""Retry delays and out-of-memory memory growth: the one implementation that ``RetryPolicy`` and the executor share.

Memory is grown in exact rational arithmetic (the factor is read from its shortest decimal spelling, so ``1.1`` is
11/10, not the binary float nearest to it) and rounded up to a whole byte, so the SDK's view of the next attempt and
the executor's agree to the byte.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["escalate_memory", "retry_delay"]


def retry_delay(retry: int, *, initial: float, multiplier: float, maximum: float | None) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry).

    Raises:
        ValueError: ``retry`` is negative.
    """
    if retry < 0:
        raise ValueError(f"retry number must be >= 0, not {retry}")
    if retry == 0 or initial <= 0:
        return 0.0
    try:
        delay = initial * multiplier ** (retry - 1)
    except OverflowError:
        delay = math.inf
    return delay if maximum is None else min(delay, maximum)


def escalate_memory(memory: int, factor: float | None, cap: int | None = None) -> int:
    """Bytes for the attempt after an out-of-memory failure at ``memory`` bytes.

    ``factor`` None (or memory unknown) keeps the memory; the result never exceeds ``cap`` unless ``memory`` already
    does, and never shrinks.

    Example:
        >>> escalate_memory(12345 * 2**20, 1.1)
        14239137792
    """
    if factor is None or memory <= 0:
        return memory
    grown = math.ceil(memory * Fraction(repr(float(factor))))
    if cap is not None and grown > cap:
        return max(memory, cap)
    return grown
