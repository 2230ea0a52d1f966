"""The handle of a run a :class:`~flytelike._runtime.Runtime` started: wait for it, cancel it, follow its events."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio

from flytelike._executor import ActionRecord, Event, Run, RunRecord

__all__ = ["RunHandle"]


class RunHandle:
    """A run started by a :class:`Runtime`: wait for it, cancel it, follow its events.

    After it ends, ``state``, ``outputs`` and ``record`` tell how; ``fl.run`` returns the handle of a finished run.

    Attributes:
        id: the run id (``flytelike runs show ID``).
        task: the root task's name.
    """

    def __init__(self, run: Run, task: str) -> None:
        self._run = run
        self.id = run.id
        self.task = task
        self._done = anyio.Event()
        self._closers: list[Callable[[], None]] = []
        self._outputs: Any = None
        self._error: BaseException | None = None

    @property
    def run(self) -> Run:
        """The live run (its action records), for progress views."""
        return self._run

    @property
    def record(self) -> RunRecord:
        return self._run.record

    @property
    def state(self) -> str:
        return self._run.record.state.value

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def outputs(self) -> Any:
        """The root task's return value.

        Raises:
            RuntimeError: the run has not ended yet.
            FlytelikeError: the run failed (its error).
        """
        if not self._done.is_set():
            raise RuntimeError(f"run {self.id} has not ended yet: await handle.result()")
        if self._error is not None:
            raise self._error
        return self._outputs

    async def result(self) -> Any:
        """Wait for the run to end; its root task's return value, or its error raised."""
        await self._done.wait()
        return self.outputs

    def cancel(self) -> None:
        """Cancel the run: running actions stop and it is recorded as aborted (``result()`` raises
        CancelledError). Call it from the event loop the run executes on."""
        self._run.cancel_scope.cancel()

    def events(self) -> AsyncIterator[Event]:
        """The run's events from this call on, until it ends (subscribed at once, so call it before awaiting)."""
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        unsubscribe = self._run.subscribe(send.send_nowait)

        closed = False

        def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                unsubscribe()
                send.close()

        if self._done.is_set():
            close()
        else:
            self._closers.append(close)

        async def follow() -> AsyncIterator[Event]:
            # No task group here: a generator that yields inside one breaks its cancel scopes when the consumer
            # stops early. The stream is closed when the run ends, or when the consumer stops, whichever is first.
            try:
                with receive:
                    async for event in receive:
                        yield event
            finally:
                close()

        return follow()

    def actions(self) -> Mapping[str, ActionRecord]:
        return self._run.actions

    def _finish(self, outputs: Any, error: BaseException | None) -> None:
        self._outputs, self._error = outputs, error
        self._done.set()
        closers, self._closers = self._closers, []
        for close in closers:
            close()
