"""The API server's storage: objects by kind, one resourceVersion counter (as etcd's revision), and a bounded
history of changes that watches replay from; a watch from before the history's start gets 410 Gone.
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from flytelike.testing.kubernetes._status import already_exists, expired, not_found, now

__all__ = ["Change", "Store"]

JSON = dict[str, Any]
ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Change:
    """One write, as watches see it.

    Attributes:
        rv: the resourceVersion the write produced.
        type: ``ADDED``, ``MODIFIED`` or ``DELETED``.
        kind: the kind of the object.
        obj: the object after the write (before it, for DELETED, with the deletion's resourceVersion).
        old: the object before the write (None for ADDED), so a selector that stops matching yields DELETED.
    """

    rv: int
    type: ChangeType
    kind: str
    obj: JSON
    old: JSON | None


class Store:
    """Objects keyed by kind, namespace and name; every write bumps one resourceVersion."""

    def __init__(self, *, history: int = 1000) -> None:
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {}
        self._history: deque[Change] = deque(maxlen=history)
        self._rv = 0
        # The highest resourceVersion whose change no longer is in the history; watches from before it get 410.
        self._compacted = 0
        self._changed = anyio.Event()

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted(self) -> int:
        """The newest resourceVersion whose change has left the history."""
        return self._compacted

    def get(self, kind: str, namespace: str, name: str) -> JSON:
        """A copy of the object; raises 404 NotFound."""
        obj = self._objects.get(kind, {}).get((namespace, name))
        if obj is None:
            raise not_found(kind, name)
        return copy.deepcopy(obj)

    def find(self, kind: str, namespace: str, name: str) -> JSON | None:
        obj = self._objects.get(kind, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def listing(self, kind: str, namespace: str | None = None) -> list[JSON]:
        """Copies of the objects of ``kind`` (in ``namespace``, or all), oldest first."""
        return [
            copy.deepcopy(o)
            for (ns, _), o in self._objects.get(kind, {}).items()
            if namespace is None or ns == namespace
        ]

    def create(self, kind: str, obj: JSON) -> JSON:
        """Store a new object, setting uid, creationTimestamp and resourceVersion; raises 409 AlreadyExists."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        objects = self._objects.setdefault(kind, {})
        if key in objects:
            raise already_exists(kind, meta["name"])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if kind == "Pod":
            meta.setdefault("generation", 1)
        return self._write(kind, key, obj, "ADDED", None)

    def update(self, kind: str, obj: JSON) -> JSON:
        """Replace an existing object (same uid), bumping its resourceVersion."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        old = self._objects.get(kind, {}).get(key)
        if old is None:
            raise not_found(kind, meta["name"])
        return self._write(kind, key, obj, "MODIFIED", old)

    def delete(self, kind: str, namespace: str, name: str) -> JSON:
        """Remove an object; the DELETED change carries a new resourceVersion."""
        objects = self._objects.get(kind, {})
        old = objects.get((namespace, name))
        if old is None:
            raise not_found(kind, name)
        del objects[(namespace, name)]
        self._rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._record(Change(self._rv, "DELETED", kind, gone, old))
        return copy.deepcopy(gone)

    def _write(self, kind: str, key: tuple[str, str], obj: JSON, type_: ChangeType, old: JSON | None) -> JSON:
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[kind][key] = obj
        self._record(Change(self._rv, type_, kind, copy.deepcopy(obj), old))
        return copy.deepcopy(obj)

    def _record(self, change: Change) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(change)
        self._changed.set()
        self._changed = anyio.Event()

    def changes_after(self, rv: int, kind: str) -> list[Change]:
        """The changes of ``kind`` after ``rv``, oldest first.

        Raises:
            ApiError: 410 Expired when changes after ``rv`` have left the history.
        """
        if rv < self._compacted:
            raise expired(rv, self._compacted + 1)
        return [c for c in self._history if c.rv > rv and c.kind == kind]

    def expire_history(self) -> None:
        """Forget all changes so far, as a compaction does: watches from any earlier version get 410."""
        self._compacted = self._rv
        self._history.clear()

    async def wait_for_change(self, after: int) -> None:
        """Return once a write after resourceVersion ``after`` has happened."""
        while self._rv <= after:
            await self._changed.wait()
