"""The contract between the executor and the places a task runs, and the stores it is given.

The executor depends on these protocols only: no SDK object, storage engine or backend class. A backend runs one
attempt of an action (``run_attempt``); one that admits work itself against a capacity (the local machine) does so
behind ``admit``, whose lease is suspended while the action waits for its children, so nesting never deadlocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple, Protocol

from flytelike._executor._events import Event
from flytelike._executor._exec_task import ExecTask
from flytelike._executor._logs import LogSink
from flytelike._executor._model import ActionRecord, ActionState, RunRecord
from flytelike._executor._values import Encoder, Values

__all__ = [
    "AdmitInput",
    "AttemptInput",
    "AttemptResult",
    "Backend",
    "CacheLock",
    "CacheStore",
    "Lease",
    "Recorder",
    "Spawner",
]


class Spawner(Protocol):
    """The part of a run that backends see: its id, where attempts' output goes, and starting child actions of a
    running action."""

    id: str
    logs: LogSink

    def spawn(self, parent: ActionRecord, task: ExecTask, inputs: Values, *, action_id: str | None = None) -> Any:
        """Start a child action of ``parent`` and return an awaitable of its output Values.

        The child's id is taken at the call (``parent.id`` + ``.`` + call order), so ids follow the order of calls;
        a caller in another process that numbered its calls itself passes ``action_id``; submitting an id again
        returns the first submission's outcome.
        """
        ...

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
        """As :meth:`spawn`, the awaitable's result being ``convert(outputs)``; ``inputs`` may be Python values
        with their ``encode``, made into Values when the action starts; ``group`` labels the action."""
        ...

    def durable(self) -> Awaitable[None]:
        """Wait until the run's events so far are in its controller's durable records (at once without them):
        awaited before an attempt starts elsewhere, so its intent is recorded before it exists."""
        ...

    def report(self, action: ActionRecord, state: ActionState, reason: str = "") -> None:
        """Say where a running attempt is: WAITING (with the platform's reason, e.g. the scheduler's message),
        INITIALIZING (image pull, bundle download) or RUNNING. Other states are the executor's own."""
        ...


class AttemptInput(NamedTuple):
    """One attempt of an action, as a backend gets it.

    Immutable, and extended only by fields with defaults, so adding one never changes a call; a named tuple rather
    than a frozen dataclass because one is made per attempt and the latter costs four times as much to build.

    Attributes:
        run: the run, to start child actions with.
        action: the action's record (a backend may set ``peak_memory`` and ``cpu_time``; output goes to ``run.logs``).
        task: the task, compiled from its template.
        inputs: literal bytes, plus the Python values when they come from this process.
        attempt: 1 for the first attempt.
        memory: this attempt's memory in bytes (it grows after an out-of-memory failure); 0 for no limit.
        deadline: ``anyio.current_time()`` by which the attempt must end, or None.
        resumed: an earlier controller of this run may have started this attempt already (it stopped, and this
            one took the run over from its records): find what it started, by the attempt's deterministic name,
            before starting anything, and read an outcome already in the store instead of running again.
        launched: with ``resumed``: the records say the backend had started the attempt (it reported a state of
            it), so an attempt that cannot be found vanished; without it, one not found may never have started.
    """

    run: Spawner
    action: ActionRecord
    task: ExecTask
    inputs: Values
    attempt: int
    memory: int
    deadline: float | None = None
    resumed: bool = False
    launched: bool = False


class AttemptResult(NamedTuple):
    """A successful attempt: its outputs and what it used (None where the backend cannot tell)."""

    outputs: Values
    peak_memory: int | None = None
    cpu_time: float | None = None


class AdmitInput(NamedTuple):
    """What an action asks a backend to admit before an attempt starts.

    Attributes:
        task: the task.
        action: the action id.
        cpu_millis, memory, gpus: the request (memory grows with out-of-memory escalation).
        on_wait: called once, with the reason, if the request has to wait for capacity.
    """

    task: ExecTask
    action: str
    cpu_millis: int
    memory: int
    gpus: int
    on_wait: Callable[[str], None]


class Lease(Protocol):
    """Capacity held by one attempt. ``suspend`` gives it back while the action only waits for its children;
    ``resume`` takes it again (waiting its turn) before the action continues."""

    def release(self) -> None: ...

    def suspend(self) -> None: ...

    def resume(self) -> Awaitable[None]: ...


class Backend(AbstractAsyncContextManager["Backend"], Protocol):
    """Runs attempts somewhere: this process, a warm worker, a pod, a Batch job.

    Entering starts what it needs (clients, watches, workers); leaving releases them. On cancellation
    ``run_attempt`` tears down what it started (a worker killed, a pod deleted, a job terminated) before it returns.
    Failures are raised: the task's own exception for in-process code, ``TaskCodeError`` for code that raised
    elsewhere, ``OutOfMemoryError``, or ``BackendError`` (a SYSTEM failure) for the platform's own faults. An
    exception may carry ``failure_kind`` (a FailureKind value) to classify itself.
    """

    name: str

    def check(self, tasks: Sequence[ExecTask]) -> None:
        """Refuse, before anything starts, tasks this backend can never run (raise); warn about doubtful ones."""
        ...

    def admit(self, request: AdmitInput) -> Awaitable[Lease]: ...

    def run_attempt(self, attempt: AttemptInput) -> Awaitable[AttemptResult]: ...

    async def logs(self, action: ActionRecord, attempt: int) -> str:
        """What the attempt printed, as far as the backend still has it."""
        ...


class Recorder(Protocol):
    """Persists runs, actions and events; called from a worker thread, never on the event loop."""

    def write(self, run: RunRecord, actions: Sequence[ActionRecord], events: Sequence[Event] = ()) -> None: ...


class CacheStore(Protocol):
    """Outputs by cache key; called from a worker thread."""

    def get(self, key: str) -> tuple[bytes, float] | None:
        """The stored outputs and the time (epoch seconds) they were stored, or None."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def try_lock(self, key: str) -> CacheLock | None:
        """Hold the computation of ``key`` (across processes sharing the cache), or ``None`` if another holds it."""
        ...


class CacheLock(Protocol):
    """A held cache-key lock (``Cache(serialize=True)``)."""

    def release(self) -> None: ...
