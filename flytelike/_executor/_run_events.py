"""A run's event stream: each transition of an action, numbered, told to subscribers and marked for the records.

:class:`RunEvents` is the part of a run that the progress views, the records' writer and a controller's durable
records see; the run itself (``_run``) emits through it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState

__all__ = ["RunEvents", "Subscriber"]

Subscriber = Callable[[Event], None]


class RunEvents:
    """Events of one run, after ``first_seq`` (the last one recorded before, for a run taken over)."""

    id: str

    def __init__(self, first_seq: int = 0) -> None:
        self._dirty: dict[str, ActionRecord] = {}
        self._seq = first_seq
        # Set by a controller whose records must hold an attempt's intent before the attempt starts anywhere (see
        # :meth:`durable`); None where nothing takes a run over after a crash.
        self.durable_hook: Callable[[], Awaitable[None]] | None = None
        self._subscribers: list[Subscriber] = []

    @property
    def seq(self) -> int:
        """The sequence number of the latest event."""
        return self._seq

    async def durable(self) -> None:
        """Wait until every event so far is in the controller's durable records (a no-op without them).

        Backends await it before they start an attempt elsewhere: the attempt's intent (its action and number, and
        so its deterministic name) is then recorded before it exists, and a controller taking the run over after a
        crash knows to look for it.
        """
        if self.durable_hook is not None:
            await self.durable_hook()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every event from now on (on the event loop); returns the unsubscribe call."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def _emit(self, record: ActionRecord, state: ActionState, kind: str = "", reason: str = "") -> None:
        record.state = state
        self._dirty[record.id] = record
        self._seq += 1
        if self._subscribers:
            event = Event(self.id, self._seq, record.id, state, record.attempts, time.time(), kind, reason)
            for subscriber in self._subscribers:
                subscriber(event)

    def take_dirty(self) -> list[ActionRecord]:
        """The actions changed since the last call.

        These are the live records, not copies: a writer reading one while the loop changes it may store a mix
        of two states, but every change marks the record again, so the next write (and the last one, after the
        run ends) stores what it finally became.
        """
        dirty, self._dirty = self._dirty, {}
        return list(dirty.values())

    def put_back(self, records: list[ActionRecord]) -> None:
        """Mark records again after a write that failed, so the next write stores them."""
        for record in records:
            self._dirty.setdefault(record.id, record)
