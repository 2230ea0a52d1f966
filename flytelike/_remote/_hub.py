"""Between the run source and the records: reports queued, written in batches, and watchers woken after commit.

A run source reports from inside the run (event callbacks that must not block), so reports go into an unbounded
queue; one writer takes whatever has piled up, writes it in as few transactions as it can (consecutive events of
one run are one transaction), and only then wakes the watchers of the runs it wrote. A watcher therefore reads
everything from the records: replay and live deltas are one query, by seq, and nothing is seen that is not
durable.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from flytelike._crash import crash_point
from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._state import ServerState

__all__ = ["Hub"]

log = logging.getLogger("flytelike.serve")
_BATCH = 500
_WRITE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class _Logs:
    run_id: str
    action_id: str
    attempt: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class _State:
    run_id: str
    state: str
    error: str = ""
    outputs: bytes | None = None
    outputs_json: str | None = None


_Report = runs_pb2.Event | _Logs | _State


class Hub:
    """The run source's reports (it implements :class:`~flytelike._remote._source.RunReports`) and the watches.

    Args:
        state: the records.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        send, receive = anyio.create_memory_object_stream[_Report](math.inf)
        self._send: MemoryObjectSendStream[_Report] = send
        self._receive: MemoryObjectReceiveStream[_Report] = receive
        self._changed: dict[str, anyio.Event] = {}
        self._idle = anyio.Event()
        self._idle.set()
        # Reports queued and reports written (or given up on), counted so a caller can wait for what it queued.
        self._queued = 0
        self._written = 0
        self._progress = anyio.Event()

    # --- RunReports --------------------------------------------------------------------------------------------

    def running(self, run_id: str) -> None:
        self._put(_State(run_id, "running"))

    def event(self, event: runs_pb2.Event) -> None:
        self._put(event)

    def logs(self, run_id: str, action_id: str, attempt: int, offset: int, data: bytes) -> None:
        if data:
            self._put(_Logs(run_id, action_id, attempt, offset, data))

    def finished(
        self, run_id: str, state: str, *, error: str = "", outputs: bytes | None = None, outputs_json: str | None = None
    ) -> None:
        self._put(_State(run_id, state, error, outputs, outputs_json))

    def _put(self, report: _Report) -> None:
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._queued += 1
        self._send.send_nowait(report)

    # --- watches -----------------------------------------------------------------------------------------------

    def changed(self, run_id: str) -> anyio.Event:
        """An event set at the next commit touching ``run_id``: take it before reading, then wait on it."""
        found = self._changed.get(run_id)
        if found is None:
            found = self._changed[run_id] = anyio.Event()
        return found

    def _wake(self, run_id: str) -> None:
        found = self._changed.pop(run_id, None)
        if found is not None:
            found.set()

    async def settled(self) -> None:
        """Wait until every report queued so far is written (and nothing else is queued)."""
        await self._idle.wait()

    async def durable(self) -> None:
        """Wait until every report queued before this call is committed; reports queued later do not hold it up
        (under a steady stream of events, :meth:`settled` might never return)."""
        target = self._queued
        while self._written < target:
            await self._progress.wait()

    # --- the writer --------------------------------------------------------------------------------------------

    async def write_forever(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write reports as they come, until cancelled; a failed write is logged and the next batch goes on."""
        task_status.started()
        with self._receive:
            await self._write_all()

    async def _write_all(self) -> None:
        async for first in self._receive:
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            await self._write_retried(batch)
            self._written += len(batch)
            self._progress.set()
            self._progress = anyio.Event()
            if self._receive.statistics().current_buffer_used == 0:
                self._idle.set()

    async def _write_retried(self, batch: list[_Report]) -> None:
        # Writing a batch again is safe: a stored event, log chunk or run state is not stored twice.
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                await self._write(batch)
                return
            except Exception:
                if attempt == _WRITE_ATTEMPTS - 1:
                    log.exception("could not record %d reports of runs; they are lost", len(batch))
                    return
                log.warning("could not record %d reports of runs; trying again", len(batch), exc_info=True)
                await anyio.sleep(0.1 * 2**attempt)

    async def _write(self, batch: list[_Report]) -> None:
        touched: set[str] = set()
        pending: list[runs_pb2.Event] = []

        async def flush() -> None:
            if pending:
                for event in await self._state.append_events(pending[0].run_id, list(pending)):
                    crash_point("recorded", f"{event.action_id}/{event.state}")
                touched.add(pending[0].run_id)
                pending.clear()

        for report in batch:
            if isinstance(report, runs_pb2.Event):
                if pending and pending[0].run_id != report.run_id:
                    await flush()
                pending.append(report)
                continue
            await flush()
            if isinstance(report, _Logs):
                await self._state.append_logs(
                    report.run_id, report.action_id, report.attempt, report.offset, report.data
                )
                touched.add(report.run_id)
            else:
                event = await self._state.set_run_state(
                    report.run_id,
                    report.state,
                    error=report.error,
                    outputs=report.outputs,
                    outputs_json=report.outputs_json,
                )
                touched.add(report.run_id)
                if event is not None:
                    log.info("run %s %s%s", report.run_id, report.state, f": {report.error}" if report.error else "")
        await flush()
        for run_id in touched:
            self._wake(run_id)

    def close(self) -> None:
        self._send.close()
