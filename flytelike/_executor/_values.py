"""Values at a task boundary: literal bytes, with the Python values beside them while they stay in this process.

The executor and the backends handle :class:`Values` only. Bytes are made on first need, by the encoder of the
code that made the values: a fan-out whose values never leave the process never encodes, while the cache, a worker,
a pod or a server always get bytes. Decoding back to Python needs the task's interface, so only the SDK side does it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flytelike.errors import BackendError

__all__ = ["Encoder", "Values"]

Encoder = Callable[[Mapping[str, Any]], bytes]


class Values:
    """Named values as literal bytes (a serialized LiteralMap), the Python values, or both.

    Args:
        python: the values by name, as this process has them.
        data: their literal bytes, when they came from elsewhere (or were encoded already).
        encode: makes the bytes from ``python`` when they are first needed.

    Example:
        >>> v = Values({"x": 1}, encode=lambda m: repr(sorted(m.items())).encode())
        >>> v.data()
        b"[('x', 1)]"
    """

    __slots__ = ("_data", "_encode", "python")

    def __init__(
        self, python: Mapping[str, Any] | None = None, *, data: bytes | None = None, encode: Encoder | None = None
    ) -> None:
        self.python = python
        self._data = data
        self._encode = encode

    @property
    def encoded(self) -> bool:
        return self._data is not None

    def data(self) -> bytes:
        """The literal bytes, encoding them now if this is the first time they are needed."""
        data = self._data
        if data is None:
            if self.python is None or self._encode is None:
                raise BackendError("values without literal bytes or an encoder cannot leave this process")
            data = self._data = self._encode(self.python)
        return data

    def __repr__(self) -> str:
        parts = []
        if self.python is not None:
            parts.append(f"python={dict(self.python)!r}")
        if self._data is not None:
            parts.append(f"{len(self._data)} bytes")
        return f"Values({', '.join(parts)})"
