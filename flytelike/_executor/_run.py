"""One run: the action tree, attempts with retries and backoff, timeouts, cache, admission, events, cancellation.

A child action runs inside the asyncio task of the code that awaits it (no extra task per action), which keeps an
in-process action to a few microseconds of overhead. Action ids follow the order of calls: the root is ``0``; the
children of ``0`` are ``0.0``, ``0.1``, ... in the order the parent called them. A child submitted from another
process names its id itself; submitting an id again returns the first submission's outcome, so a retried parent
that re-submits its children never runs one twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
from google.protobuf.message import DecodeError

from flytelike._executor._aborts import AbortedError, Aborts
from flytelike._executor._cache_key import cache_key, recovery_digest
from flytelike._executor._events import FailureKind
from flytelike._executor._exec_task import ExecTask
from flytelike._executor._failures import describe, final_error, first_line, kind_of, seconds, type_name
from flytelike._executor._live import Live, Submitted
from flytelike._executor._logs import LogSink, TailOnly
from flytelike._executor._model import ActionRecord, ActionState, RunState
from flytelike._executor._protocols import AdmitInput, AttemptInput, Backend, Lease
from flytelike._executor._run_events import RunEvents
from flytelike._executor._run_input import RunInput
from flytelike._executor._takeover import go_on, in_doubt
from flytelike._executor._values import Encoder, Values
from flytelike._proto.core.v1 import literals_pb2
from flytelike.errors import (
    AdmissionError,
    BackendError,
    TaskTimeoutError,
)

__all__ = ["Run", "RunInput"]

_QUEUED, _WAITING, _RUNNING = ActionState.QUEUED, ActionState.WAITING, ActionState.RUNNING
_REPORTABLE = frozenset({_QUEUED, ActionState.WAITING, ActionState.INITIALIZING, _RUNNING})
_SUCCEEDED, _CACHED, _FAILED = ActionState.SUCCEEDED, ActionState.CACHED, ActionState.FAILED
_RETRYING, _ABORTED, _TIMED_OUT = ActionState.RETRYING, ActionState.ABORTED, ActionState.TIMED_OUT
_RECOVERED = ActionState.RECOVERED
_YIELD_EVERY = 64
_LOCK_POLL = 0.05  # seconds between tries for a cache key another action is computing


class Run(RunEvents):
    """The state of one run while it executes."""

    def __init__(self, spec: RunInput) -> None:
        self.record = spec.record
        self.id = spec.record.id
        self.platform = spec.platform
        self._backends = spec.backends
        self._backend_of: dict[str, Backend] = {}
        self._cache = spec.cache
        self._system_retries = spec.system_retries
        self._recovery = spec.recovery or None
        self._keep = spec.record_outputs or self._recovery is not None
        self._record_outputs = spec.record_outputs
        self._resume = spec.resume or None
        # Attempts that can be aborted one by one (abort_action), by action id: kept only for runs that allow it.
        self._aborts = Aborts() if spec.abortable else None
        self.actions: dict[str, ActionRecord] = {}
        # What the run's attempts print; the runtime replaces it with a spool to files.
        self.logs: LogSink = TailOnly(self.actions)
        self._live: dict[str, Live] = {}
        RunEvents.__init__(self, spec.first_seq)
        self._groups: dict[str, str] = {}  # fl.group labels of actions called but not yet started
        self.cancel_scope = anyio.CancelScope()

    # --- submission ---------------------------------------------------------------------------------------------

    def spawn(self, parent: ActionRecord, task: ExecTask, inputs: Values, *, action_id: str | None = None) -> Any:
        return self.call(parent, task, inputs, None, action_id=action_id)

    def call(
        self,
        parent: ActionRecord,
        task: ExecTask,
        inputs: Values | Mapping[str, Any],
        convert: Callable[[Values], Any] | None,
        *,
        encode: Encoder | None = None,
        action_id: str | None = None,
        group: str | None = None,
    ) -> Any:
        """A child action of ``parent`` as an awaitable; its result is ``convert(outputs)`` (or the Values).

        ``inputs`` may be the Python values themselves, with their ``encode``: their Values are then made when the
        action starts, so a call that waits (in a fan-out, all of them at once) holds one object less. ``group``
        labels the action (``fl.group``).
        """
        live = self._live.get(parent.id)
        if live is None:
            raise BackendError(f"action {parent.id} of run {self.id} is not running; it cannot start tasks")
        if action_id is None:
            action_id = f"{parent.id}.{live.children}"
            live.children += 1
            if group is not None:
                self._groups[action_id] = group
            return self._action(task, inputs, encode, live, action_id, convert)
        if group is not None:
            self._groups[action_id] = group
        prefix, _, number = action_id.rpartition(".")
        if prefix != parent.id or not number.isdecimal():
            raise BackendError(f"child action id {action_id!r} is not of the form {parent.id}.N")
        values = inputs if isinstance(inputs, Values) else Values(inputs, encode=encode)
        return self._child_by_id(live, action_id, task, values, convert)

    async def _action(
        self,
        task: ExecTask,
        inputs: Values | Mapping[str, Any],
        encode: Encoder | None,
        parent: Live,
        action_id: str,
        convert: Callable[[Values], Any] | None,
    ) -> Any:
        # The coroutine a caller holds, and asyncio keeps until a gather ends, is this small one rather than
        # execute's large frame (a coroutine's size is its frame's): a 100,000-way fan-out holds 100,000 of them.
        values = inputs if isinstance(inputs, Values) else Values(inputs, encode=encode)
        return await self.execute(task, values, parent, action_id, convert)

    async def _child_by_id(
        self, parent: Live, action_id: str, task: ExecTask, inputs: Values, convert: Callable[[Values], Any] | None
    ) -> Any:
        by_id = parent.by_id
        if by_id is None:
            by_id = parent.by_id = {}
        submitted = by_id.get(action_id)
        if submitted is None:
            submitted = by_id[action_id] = Submitted()
            try:
                submitted.outputs = await self.execute(task, inputs, parent, action_id)
            except BaseException as e:
                # A failed or cancelled child may be submitted again (a retried parent): it then runs afresh.
                del by_id[action_id]
                submitted.error = e
                raise
            finally:
                submitted.done.set()
        else:
            await submitted.done.wait()
            if submitted.outputs is None:
                raise submitted.error or BackendError(f"child action {action_id} ended without outputs")
        return submitted.outputs if convert is None else convert(submitted.outputs)

    # --- one action ---------------------------------------------------------------------------------------------

    async def execute(
        self,
        task: ExecTask,
        inputs: Values,
        parent: Live | None,
        action_id: str,
        convert: Callable[[Values], Any] | None = None,
    ) -> Any:
        """Run one action to its end; its outputs (``convert``-ed if given), or its final error raised."""
        lease = None
        if parent is not None:
            # A parent that waits for children holds no capacity, so nested tasks can never deadlock admission.
            parent.outstanding += 1
            lease = parent.lease
            if parent.outstanding == 1 and lease is not None:
                lease.suspend()
        platform = task.platform or self.platform
        record = ActionRecord(
            self.id,
            action_id,
            None if parent is None else parent.record.id,
            task.name,
            task.version,
            _QUEUED,
            0,
            time.time(),
            None,
            None,
            task.cpu_millis,
            task.memory,
            task.gpus,
            None,
            None,
            None,
            None,
            platform,
        )
        if self._groups:
            record.group_name = self._groups.pop(action_id, None)
        self.actions[action_id] = record
        self.record.actions += 1
        live = Live(record)
        self._live[action_id] = live
        try:
            # Inline children complete without yielding to the event loop; yield now and then so that Ctrl-C,
            # cancellation and the record flusher are not held off by a long chain.
            if self.record.actions % _YIELD_EVERY == 0:
                await anyio.lowlevel.checkpoint()
            if self._resume is None or action_id not in self._resume:
                self._emit(record, _QUEUED)  # a resumed action was queued (and recorded) by the controller before
            if self._keep:
                outputs = await self._recorded(task, inputs, live, platform)
            elif task.deadline is not None:
                outputs = await self._within_deadline(task, inputs, live, platform)
            elif task.cache:
                outputs = await self._cached(task, inputs, live, platform)
            else:
                outputs = await self._attempts(task, inputs, live, platform)
        except anyio.get_cancelled_exc_class():
            if parent is not None:
                parent.outstanding -= 1
            raise
        except BaseException:
            if parent is not None:
                parent.outstanding -= 1
                if parent.outstanding == 0 and lease is not None and parent.lease is lease:
                    await lease.resume()
            raise
        finally:
            del self._live[action_id]
        if parent is not None:
            # Inline rather than a helper coroutine: this runs once per child.
            parent.outstanding -= 1
            if parent.outstanding == 0 and lease is not None and parent.lease is lease:
                await lease.resume()
        return outputs if convert is None else convert(outputs)

    async def _recorded(self, task: ExecTask, inputs: Values, live: Live, platform: str) -> Values:
        """The action for a run that records outputs or recovers them: an earlier success of the same action id,
        task identity and inputs is reused; otherwise it runs, and its outputs are kept in its record."""
        record = live.record
        record.inputs_digest = digest = recovery_digest(task, inputs.data())
        earlier = self._recovery.get(record.id) if self._recovery is not None else None
        if earlier is not None and earlier.inputs_digest == digest and _complete(earlier.outputs, task):
            record.started = record.ended = time.time()
            record.recovered_from = earlier.run_id
            record.outputs = earlier.outputs
            self._emit(record, _RECOVERED, "", f"recovered from run {earlier.run_id}")
            return Values(data=earlier.outputs)
        if task.deadline is not None:
            outputs = await self._within_deadline(task, inputs, live, platform)
        elif task.cache:
            outputs = await self._cached(task, inputs, live, platform)
        else:
            outputs = await self._attempts(task, inputs, live, platform)
        if self._record_outputs:
            record.outputs = outputs.data()
        return outputs

    async def _within_deadline(self, task: ExecTask, inputs: Values, live: Live, platform: str) -> Values:
        """The action bounded by its deadline: admission, every attempt and the waits between them."""
        assert task.deadline is not None
        with anyio.move_on_after(task.deadline):
            if task.cache:
                return await self._cached(task, inputs, live, platform)
            return await self._attempts(task, inputs, live, platform)
        record = live.record
        record.ended = time.time()
        record.error_type, record.failure_kind = "timeout", FailureKind.TIMEOUT.value
        record.error = f"the action's deadline of {seconds(task.deadline)} passed (attempt {record.attempts})"
        self._emit(record, _TIMED_OUT, FailureKind.TIMEOUT.value, record.error)
        error = TaskTimeoutError(
            f"task {task.name} (action {record.id}, attempt {record.attempts}) timed out: {record.error}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
        )
        error.failure_kind = FailureKind.TIMEOUT.value  # type: ignore[attr-defined]
        raise error

    async def _cached(self, task: ExecTask, inputs: Values, live: Live, platform: str) -> Values:
        record = live.record
        record.cache_key = key = cache_key(task, inputs.data())
        lock = None
        if task.cache_serialize:
            # One computation per key: the others wait here, then find its result in the cache.
            while (lock := await anyio.to_thread.run_sync(self._cache.try_lock, key)) is None:
                await anyio.sleep(_LOCK_POLL)
        try:
            if not task.cache_overwrite:
                hit = await anyio.to_thread.run_sync(self._cache.get, key)
                if (
                    hit is not None
                    and (task.cache_ttl is None or time.time() - hit[1] <= task.cache_ttl)
                    and _complete(hit[0], task)
                ):
                    record.started = record.ended = time.time()
                    self._emit(record, _CACHED)
                    return Values(data=hit[0])
            outputs = await self._attempts(task, inputs, live, platform)
            await anyio.to_thread.run_sync(self._cache.put, key, outputs.data())
            return outputs
        finally:
            if lock is not None:
                lock.release()

    async def _attempts(self, task: ExecTask, inputs: Values, live: Live, platform: str) -> Values:
        record = live.record
        backend = self._backend_of.get(platform)
        if backend is None:
            backend = self._backend_of[platform] = self._backends(platform)
        # `memory` is the attempt's limit (what a child process is held to), `reserved` what admission books;
        # both grow after an out-of-memory failure.
        memory = task.memory_limit or task.memory
        reserved = task.memory
        user_left, system_left = task.retries, self._system_retries
        # A backend whose platform reports its own states (queued, waiting, initializing, running) through
        # report() says so; the others are running as soon as their attempt starts.
        reports_states = getattr(backend, "reports_states", False)
        attempt = 0
        resumed = self._resume.get(record.id) if self._resume is not None else None
        if resumed is not None:
            attempt, memory, reserved, user_left, system_left = go_on(
                task, record, resumed, memory=memory, reserved=reserved, system_retries=self._system_retries
            )
        while True:
            attempt += 1
            record.attempts = attempt
            # The first attempt of a resumed action may exist already (the earlier controller recorded its intent);
            # a backend that reports its attempts' states had started it if a state of it is recorded.
            doubt = resumed is not None and in_doubt(resumed, attempt)
            launched = doubt and reports_states and resumed is not None and resumed.attempt == attempt
            lease: Lease | None = None
            if task.cpu_millis or reserved or task.gpus:
                lease = live.lease = await backend.admit(
                    AdmitInput(task, record.id, task.cpu_millis, reserved, task.gpus, self._waiting(record))
                )
            if record.started is None:
                record.started = time.time()
            # An attempt in doubt that was recorded past its start (running, or even ended) has said so already.
            if not reports_states and not (doubt and record.state is not _QUEUED and record.state is not _RETRYING):
                self._emit(record, _RUNNING)
            failure: BaseException | None = None
            try:
                if self._aborts is not None:
                    one = AttemptInput(self, record, task, inputs, attempt, memory, None, doubt, launched)
                    ended = await self._aborts.run(backend, one)
                    if isinstance(ended, TimeoutError):
                        failure = ended
                    else:
                        result = ended
                elif task.timeout is None:
                    result = await backend.run_attempt(
                        AttemptInput(self, record, task, inputs, attempt, memory, None, doubt, launched)
                    )
                else:
                    deadline = anyio.current_time() + task.timeout
                    with anyio.move_on_after(task.timeout) as scope:
                        result = await backend.run_attempt(
                            AttemptInput(self, record, task, inputs, attempt, memory, deadline, doubt, launched)
                        )
                    if scope.cancelled_caught:
                        failure = TimeoutError(f"exceeded {seconds(task.timeout)}")
                        failure.failure_kind = FailureKind.TIMEOUT.value  # type: ignore[attr-defined]
            except anyio.get_cancelled_exc_class():
                record.ended = time.time()
                # Cancelled by its own deadline, it ends timed out (_within_deadline says so), not aborted.
                if task.deadline is None or record.ended < record.created + task.deadline:
                    self._emit(record, _ABORTED)
                raise
            except AdmissionError:
                raise
            except AbortedError as e:
                record.ended = time.time()
                record.error = str(e)
                self._emit(record, _ABORTED, "", str(e))
                raise BackendError(str(e)) from None
            except Exception as e:
                failure = e
            finally:
                if lease is not None:
                    live.lease = None
                    lease.release()
            if failure is None:
                if result.peak_memory is not None:
                    record.peak_memory = result.peak_memory
                if result.cpu_time is not None:
                    record.cpu_time = result.cpu_time
                if record.error is not None:
                    # Earlier attempts' errors are history; a succeeded action shows none.
                    record.error = record.error_type = record.failure_kind = None
                record.ended = time.time()
                if not (doubt and record.state is _SUCCEEDED):  # recorded before the controller stopped
                    self._emit(record, _SUCCEEDED)
                return result.outputs
            kind = kind_of(failure, record.id)
            record.error_type = "timeout" if kind is FailureKind.TIMEOUT else type_name(failure)
            record.error = describe(failure, record)
            record.failure_kind = kind.value
            if kind is FailureKind.OOM:
                record.peak_memory = getattr(failure, "peak_memory", None) or record.peak_memory
            system = kind in (FailureKind.SYSTEM, FailureKind.INFRA)
            # A failure that says no retry can help (a request the platform refuses as invalid) is final.
            if getattr(failure, "retryable", True) and (system_left if system else user_left) > 0:
                if system:
                    system_left -= 1
                else:
                    user_left -= 1
                self._emit(record, _RETRYING, kind.value, first_line(record.error))
                if kind is FailureKind.OOM:
                    memory = task.escalated_memory(memory)
                    reserved = min(task.escalated_memory(reserved), memory)
                    record.memory = reserved
                delay = task.backoff(attempt)
                if delay:
                    await anyio.sleep(delay)
                continue
            record.ended = time.time()
            self._emit(record, _TIMED_OUT if kind is FailureKind.TIMEOUT else _FAILED, kind.value)
            raise final_error(kind, failure, task, record, task.retries + 1 + self._system_retries - system_left)

    def abort_action(self, action_id: str, reason: str) -> bool:
        """Stop the running attempt of one action: it ends ABORTED (not retried), and its caller gets a failure.

        Only for runs made abortable (``RunInput.abortable``); False when the action has no attempt running.
        """
        return self._aborts is not None and self._aborts.abort(action_id, reason)

    def report(self, action: ActionRecord, state: ActionState, reason: str = "") -> None:
        """A backend's word on a running attempt: QUEUED, WAITING (with the platform's reason), INITIALIZING or RUNNING.

        Only an action that is running an attempt changes; a report arriving after the attempt ended is dropped.
        """
        if state not in _REPORTABLE or action.state.done or self.actions.get(action.id) is not action:
            return
        if action.state is state and not reason:
            return
        self._emit(action, state, "", reason)

    def _waiting(self, record: ActionRecord) -> Callable[[str], None]:
        def on_wait(reason: str) -> None:
            self._emit(record, _WAITING, "", reason)

        return on_wait

    def finish(self, state: RunState, error: str | None = None) -> None:
        self.record.state = state
        self.record.error = error
        self.record.ended = time.time()
        for record in self.actions.values():
            if not record.state.done:
                record.ended = record.ended or self.record.ended
                self._emit(record, _ABORTED)
        # Actions the records had going that this run never came back to (their caller ended without them) end too.
        for action_id, resumed in (self._resume or {}).items():
            if action_id not in self.actions and not resumed.state.done:
                left = ActionRecord(self.id, action_id, None, "", "", resumed.state, resumed.attempt)
                left.ended = self.record.ended
                self._emit(left, _ABORTED, "", "not taken up again after the controller restarted")


def _complete(data: bytes, task: ExecTask) -> bool:
    """Whether cached bytes are outputs of ``task``: a damaged entry is a miss, and the task runs again."""
    try:
        literals = literals_pb2.LiteralMap.FromString(data)
    except DecodeError:
        return False
    return set(literals.literals) == task.outputs
