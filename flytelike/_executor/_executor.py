"""The executor: runs action graphs on backends, speaking task templates and literal values only.

It knows no machine and no platform by name: a backend is found by the platform name a task (or the run) gives,
admits and runs attempts, and says itself what it can never run (``Backend.check``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio

from flytelike._executor._events import Event
from flytelike._executor._exec_task import ExecTask
from flytelike._executor._model import Recovered, Resumed, RunRecord, RunState
from flytelike._executor._protocols import Backend, CacheStore, Recorder
from flytelike._executor._run import Run, RunInput
from flytelike._executor._values import Values
from flytelike.errors import CancelledError, FlytelikeError

__all__ = ["Executor", "ExecutorInput"]

_FLUSH_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class ExecutorInput:
    """What an executor is built from.

    Attributes:
        backends: the backend for a platform name; raises BackendError for one that is not available.
        recorder: persists runs and actions.
        cache: the output cache.
        system_retries: attempts a SYSTEM or INFRA failure may cost an action beyond its own retries.
        record_events: also write every event to the records (a shared server's watch streams replay them); local
            runs keep the actions' latest states only, since a 100,000-way fan-out would otherwise hold three
            events per action in memory between two writes.
    """

    backends: Callable[[str], Backend]
    recorder: Recorder
    cache: CacheStore
    system_retries: int = 3
    record_events: bool = False


class Executor:
    """Runs actions on backends; one executor serves many runs at once."""

    def __init__(self, spec: ExecutorInput) -> None:
        self._spec = spec
        self.recorder = spec.recorder
        # Events not yet written, by run (only with record_events).
        self._events: dict[str, list[Event]] = {}

    def backend(self, platform: str) -> Backend:
        return self._spec.backends(platform)

    def check(self, tasks: Iterable[ExecTask], platform: str) -> None:
        """Before anything starts: every task's backend exists and can run it (else the backend raises)."""
        groups: dict[str, list[ExecTask]] = {}
        for task in tasks:
            groups.setdefault(task.platform or platform, []).append(task)
        for name, group in groups.items():
            self.backend(name).check(group)

    def new_run(
        self,
        record: RunRecord,
        *,
        record_outputs: bool = False,
        recovery: Mapping[str, Recovered] | None = None,
        resume: Mapping[str, Resumed] | None = None,
        first_seq: int = 0,
        abortable: bool = False,
    ) -> Run:
        """A run of ``record``; see :class:`RunInput` for ``record_outputs``, ``recovery``, ``resume``,
        ``first_seq`` and ``abortable``."""
        return Run(
            RunInput(
                record=record,
                backends=self._spec.backends,
                cache=self._spec.cache,
                platform=record.platform,
                system_retries=self._spec.system_retries,
                record_outputs=record_outputs,
                recovery=recovery,
                resume=resume,
                first_seq=first_seq,
                abortable=abortable,
            )
        )

    async def execute(self, run: Run, task: ExecTask, inputs: Values) -> Values:
        """Execute ``task`` as the root action of ``run``; records are written first, as it goes, and at the end.

        Raises:
            TaskFailedError: the root task failed (``run_id`` is set on the error).
            CancelledError: the run was cancelled through ``run.cancel_scope``.
        """
        outcome: Values | BaseException | None = None
        state, error = RunState.ABORTED, "cancelled"
        # Written before the root starts: the run is visible (and its pid known) at once, however large it gets.
        run.record.state = RunState.QUEUED
        await self._flush(run)
        run.record.state = RunState.RUNNING
        failed_write: list[FlytelikeError] = []
        if self._spec.record_events:
            run.subscribe(self._pending(run).append)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._flush_periodically, run, failed_write)
                try:
                    outcome = await self._root(run, task, inputs)
                finally:
                    tg.cancel_scope.cancel()
            if failed_write:
                outcome = failed_write[0]
            elif outcome is None:
                outcome = CancelledError(f"run {run.id} was cancelled")
            if isinstance(outcome, BaseException):
                state = RunState.ABORTED if isinstance(outcome, CancelledError) else RunState.FAILED
                error = str(outcome)
                if isinstance(outcome, FlytelikeError):
                    outcome.run_id = run.id
                raise outcome
            state, error = RunState.SUCCEEDED, ""
            return outcome
        finally:
            run.finish(state, error or None)
            if not failed_write:
                await self._flush(run)

    async def _root(self, run: Run, task: ExecTask, inputs: Values) -> Values | BaseException | None:
        with run.cancel_scope:
            try:
                outputs: Values = await run.execute(task, inputs, None, "0")
                return outputs
            except FlytelikeError as e:
                return e
        return None

    async def _flush_periodically(self, run: Run, failed: list[FlytelikeError]) -> None:
        while True:
            await anyio.sleep(_FLUSH_EVERY)
            try:
                await self._flush(run)
            except FlytelikeError as e:
                # The records cannot be written: end the run with that error rather than run on unrecorded.
                failed.append(e)
                run.cancel_scope.cancel()
                return

    def _pending(self, run: Run) -> list[Event]:
        return self._events.setdefault(run.id, [])

    async def _flush(self, run: Run) -> None:
        # Shielded from the moment the batch is taken: a cancellation here would drop it.
        with anyio.CancelScope(shield=True):
            dirty = run.take_dirty()
            events = self._events.get(run.id)
            batch: list[Event] = []
            if events:
                batch = events[:]
                del events[:]
            run.record.heartbeat = time.time()
            try:
                await anyio.to_thread.run_sync(self.recorder.write, run.record, dirty, batch)
            except BaseException:
                run.put_back(dirty)
                if events is not None:
                    events[:0] = batch
                raise
            if run.record.ended is not None:
                self._events.pop(run.id, None)
