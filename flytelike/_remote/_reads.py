"""Reads of a run's events shared by the watches that want the same ones at the same time.

A commit wakes every watch of its run at once, and the watches that were caught up all ask for the events after
the same cursor: one of them reads (one query, one conversion of the rows), and the others take its answer, rather
than each reading the same rows again. With 50 watchers of a busy run, their reads were most of the server's work,
and held up the writer.
"""

from __future__ import annotations

import anyio

from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._state import ServerState

__all__ = ["EventReads"]


class _Read:
    __slots__ = ("done", "events")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.events: list[runs_pb2.Event] | None = None  # None: the reader failed or was cancelled


class EventReads:
    """``events_after`` of the records, one query per (run, cursor) in flight whoever asks."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._reading: dict[tuple[str, int], _Read] = {}

    async def after(self, run_id: str, cursor: int) -> list[runs_pb2.Event]:
        """The run's events after ``cursor`` (a page of them, in order), as :meth:`ServerState.events_after`."""
        key = (run_id, cursor)
        read = self._reading.get(key)
        if read is not None:
            await read.done.wait()
            if read.events is not None:
                return read.events
            # The one reading stopped (its watch went away, or the query failed): read for this watch itself.
            return await self._state.events_after(run_id, cursor)
        read = self._reading[key] = _Read()
        try:
            read.events = await self._state.events_after(run_id, cursor)
            return read.events
        finally:
            del self._reading[key]
            read.done.set()
