"""One run: the action tree, attempts with retries and backoff, timeouts, cache, admission and cancellation.

A child action runs inside the asyncio task of the code that awaits it (no extra task per action), which keeps
an in-process action to a few microseconds of overhead. Action ids follow the order of calls: the root is
``0``; the children of ``0`` are ``0.0``, ``0.1``, ... in the order the parent called them.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
import traceback
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from flytelike._executor._admission import Request
from flytelike._executor._model import ActionRecord, ActionState, ExecTask, RunRecord, RunState
from flytelike._executor._protocols import Host
from flytelike.errors import (
    AdmissionError,
    BackendError,
    OutOfMemoryError,
    TaskFailedError,
    TaskTimeoutError,
)

__all__ = ["Run"]


_NOTHING = Request()


@dataclass(slots=True)
class _Live:
    """Per-action bookkeeping that only matters while the action runs."""

    record: ActionRecord
    children: int = 0
    outstanding: int = 0
    held: Request = _NOTHING
    want: Request = _NOTHING


class Run:
    """The state of one run while it executes."""

    def __init__(self, executor: Host, record: RunRecord, platform: str) -> None:
        self.executor = executor
        self.record = record
        self.id = record.id
        self.platform = platform
        self.actions: dict[str, ActionRecord] = {}
        self._live: dict[str, _Live] = {}
        self._dirty: dict[str, ActionRecord] = {}
        self.cancel_scope = anyio.CancelScope()

    # --- submission -------------------------------------------------------------------------------------------

    def child(self, parent: ActionRecord, task: ExecTask, values: Mapping[str, Any]) -> Coroutine[Any, Any, Any]:
        """A child action of ``parent``; its id is taken now, so it follows the order of calls."""
        live = self._live.get(parent.id)
        if live is None:
            raise BackendError(f"action {parent.id} of run {self.id} is not running; it cannot start tasks")
        action_id = f"{parent.id}.{live.children}"
        live.children += 1
        return self._run_child(live, action_id, task, values)

    async def _run_child(self, parent: _Live, action_id: str, task: ExecTask, values: Mapping[str, Any]) -> Any:
        # A parent that waits for children holds no capacity, so nested tasks can never deadlock admission.
        parent.outstanding += 1
        if parent.outstanding == 1 and parent.held:
            self.executor.admission.release(parent.held)
            parent.held = _NOTHING
        try:
            return await self.execute(task, values, parent.record.id, action_id)
        finally:
            parent.outstanding -= 1
            if parent.outstanding == 0 and parent.want and parent.record.state is ActionState.RUNNING:
                await self.executor.admission.acquire(parent.want)
                parent.held = parent.want

    # --- one action ---------------------------------------------------------------------------------------------

    def mark(self, record: ActionRecord) -> None:
        self._dirty[record.id] = record

    def take_dirty(self) -> list[ActionRecord]:
        """Snapshots of the actions changed since the last call (taken on the event loop thread)."""
        dirty, self._dirty = self._dirty, {}
        out = []
        for r in dirty.values():
            c = copy.copy(r)
            c.logs = list(r.logs)
            out.append(c)
        return out

    async def execute(
        self, task: ExecTask, values: Mapping[str, Any], parent: str | None, action_id: str
    ) -> Mapping[str, Any]:
        platform = task.platform or self.platform
        record = ActionRecord(
            run_id=self.id,
            id=action_id,
            parent=parent,
            task=task.name,
            task_version=task.version,
            cpu_millis=task.cpu_millis,
            memory=task.memory,
            gpus=task.gpus,
            platform="local" if platform == "" else platform,
        )
        self.actions[action_id] = record
        self.record.actions += 1
        # Inline children complete without yielding to the event loop; yield now and then so that Ctrl-C,
        # cancellation and the record flusher are not held off by a long chain.
        if self.record.actions % 64 == 0:
            await anyio.lowlevel.checkpoint()
        self.mark(record)
        live = _Live(record)
        self._live[action_id] = live
        try:
            if task.cache:
                outputs = await self._from_cache(task, values, record)
                if outputs is not None:
                    return outputs
            outputs = await self._attempts(task, values, live)
            if task.cache and record.cache_key:
                data = self.executor.codec.encode_outputs(task, outputs)
                await anyio.to_thread.run_sync(self.executor.cache.put, record.cache_key, data)
            return outputs
        finally:
            del self._live[action_id]

    async def _from_cache(
        self, task: ExecTask, values: Mapping[str, Any], record: ActionRecord
    ) -> Mapping[str, Any] | None:
        kept = {k: v for k, v in values.items() if k not in task.cache_ignored}
        digest = hashlib.sha256()
        digest.update(f"{task.name}\0{task.cache_version or task.version}\0".encode())
        digest.update(self.executor.codec.encode_inputs(task, kept))
        record.cache_key = digest.hexdigest()
        hit = await anyio.to_thread.run_sync(self.executor.cache.get, record.cache_key)
        if hit is None:
            return None
        data, stored = hit
        if task.cache_ttl is not None and time.time() - stored > task.cache_ttl:
            return None
        record.state = ActionState.CACHED
        record.started = record.ended = time.time()
        self.mark(record)
        return self.executor.codec.decode_outputs(task, data)

    async def _attempts(self, task: ExecTask, values: Mapping[str, Any], live: _Live) -> Mapping[str, Any]:
        record = live.record
        executor = self.executor
        backend = executor.backend_for(record.platform)
        # `memory` is the attempt's limit (what a child process is held to), `reserved` what admission books;
        # both grow after an out-of-memory failure.
        memory = task.memory_limit or task.memory
        reserved = task.memory
        total = task.retries + 1
        for attempt in range(1, total + 1):
            record.attempts = attempt
            request = Request(task.cpu_millis, reserved, task.gpus)
            if record.platform == "local" and request:
                request = executor.local_request(task, request, record.id)
                live.want = request
                if not executor.admission.can_admit_now(request):
                    record.state = ActionState.WAITING
                    self.mark(record)
                await executor.admission.acquire(request)
                live.held = request
            record.state = ActionState.RUNNING
            if record.started is None:
                record.started = time.time()
            self.mark(record)
            failure: BaseException | None = None
            kind = "error"
            try:
                if task.timeout is None:
                    outputs = await backend.run_attempt(self, record, task, values, memory)
                else:
                    with anyio.move_on_after(task.timeout) as scope:
                        outputs = await backend.run_attempt(self, record, task, values, memory)
                    if scope.cancelled_caught:
                        kind = "timeout"
                        failure = TimeoutError(f"exceeded {_seconds(task.timeout)}")
            except anyio.get_cancelled_exc_class():
                record.state = ActionState.ABORTED
                record.ended = time.time()
                self.mark(record)
                raise
            except OutOfMemoryError as e:
                kind, failure = "oom", e
                record.peak_memory = getattr(e, "peak_memory", None) or record.peak_memory
            except AdmissionError:
                raise
            except Exception as e:
                failure = e
            finally:
                if live.held:
                    executor.admission.release(live.held)
                    live.held = _NOTHING
                live.want = _NOTHING
            if failure is None:
                # Earlier attempts' errors are history; a succeeded action shows none.
                record.error = record.error_type = None
                record.state = ActionState.SUCCEEDED
                record.ended = time.time()
                self.mark(record)
                return outputs
            record.error_type = "timeout" if kind == "timeout" else type(failure).__name__
            record.error = _describe(failure)
            if attempt < total:
                record.state = ActionState.RETRYING
                self.mark(record)
                if kind == "oom":
                    memory = task.escalated_memory(memory)
                    reserved = min(task.escalated_memory(reserved), memory)
                    record.memory = reserved
                delay = task.backoff(attempt)
                if delay:
                    await anyio.sleep(delay)
                continue
            record.state = ActionState.TIMED_OUT if kind == "timeout" else ActionState.FAILED
            record.ended = time.time()
            self.mark(record)
            raise _final_error(kind, failure, task, record, total)
        raise AssertionError("unreachable: the attempt loop always returns or raises")

    def finish(self, state: RunState, error: str | None = None) -> None:
        self.record.state = state
        self.record.error = error
        self.record.ended = time.time()
        for record in self.actions.values():
            if not record.state.done:
                record.state = ActionState.ABORTED
                record.ended = record.ended or self.record.ended
                self.mark(record)


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 120 or not math.isfinite(seconds) else f"{seconds / 60:g}m"


def _describe(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


def _final_error(kind: str, failure: BaseException, task: ExecTask, record: ActionRecord, total: int) -> Exception:
    where = f"task {task.name} (action {record.id}, attempt {record.attempts}/{total})"
    cause = f"{type(failure).__name__}: {failure}"
    error: TaskFailedError
    if kind == "timeout":
        error = TaskTimeoutError(
            f"{where} timed out: {failure}", task=task.name, action=record.id, attempt=record.attempts
        )
    elif kind == "oom":
        error = OutOfMemoryError(
            f"{where} ran out of memory: {failure}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
            cause_type="OutOfMemoryError",
        )
    else:
        error = TaskFailedError(
            f"{where} failed: {cause}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
            cause_type=f"{type(failure).__module__}.{type(failure).__qualname__}",
        )
    error.__cause__ = failure
    return error
