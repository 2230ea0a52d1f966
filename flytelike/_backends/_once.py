"""Look-ups made once per key by concurrent callers (a bundle, a queue's compute type, a job definition)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

__all__ = ["Once"]

T = TypeVar("T")


class _Entry(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class Once(Generic[T]):
    """``await once.get(key, make)``: the first caller of a key runs ``make()``, the others wait for its value.

    A failure is given to the callers waiting for it and forgotten, so a later call tries again.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry[T]] = {}

    def known(self, key: str) -> T | None:
        """The value of ``key`` if a look-up already gave it."""
        entry = self._entries.get(key)
        return entry.value if entry is not None and entry.done.is_set() else None

    async def get(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                try:
                    value = entry.value = await make()
                except BaseException as e:
                    del self._entries[key]
                    entry.error = e
                    raise
                finally:
                    entry.done.set()
                return value
            await entry.done.wait()
            if entry.error is None:
                assert entry.value is not None
                return entry.value
            if not isinstance(entry.error, anyio.get_cancelled_exc_class()):
                raise entry.error
            # The caller making it was cancelled, not this one: make it again.
