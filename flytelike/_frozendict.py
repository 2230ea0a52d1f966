"""An immutable, hashable mapping for the dict-valued fields of frozen SDK objects (labels, tags, env vars).

Example:
    >>> from flytelike._frozendict import FrozenDict
    >>> labels = FrozenDict({"team": "ml"})
    >>> labels["team"], hash(labels) == hash(FrozenDict(team="ml"))
    ('ml', True)
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

__all__ = ["FrozenDict"]

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    """A dict that refuses changes, so a frozen object holding it really is frozen (and hashable)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is immutable; build a new object with the changed values")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))
