"""The executor's records of runs and actions, and their states (a task's compiled view is in ``_exec_task``).

Plain dataclasses and enums with no protobuf: the run records and the commands that read them (``flytelike runs``,
``logs``) load this module alone.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

__all__ = ["ActionRecord", "ActionState", "Recovered", "Resumed", "RunRecord", "RunState"]


class ActionState(enum.StrEnum):
    QUEUED = "queued"
    WAITING = "waiting"  # admitted later: waiting for machine capacity
    INITIALIZING = "initializing"  # placed; its image, bundle or worker is being prepared
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABORTED = "aborted"
    CACHED = "cached"
    # Reused from the recorded outputs of an earlier run (`flytelike rerun --recover`); nothing ran.
    RECOVERED = "recovered"

    @property
    def done(self) -> bool:
        return self in _DONE


_DONE = frozenset(
    {
        ActionState.SUCCEEDED,
        ActionState.FAILED,
        ActionState.TIMED_OUT,
        ActionState.ABORTED,
        ActionState.CACHED,
        ActionState.RECOVERED,
    }
)


class RunState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    # Never written by the process running the run: readers report a queued or running run as lost when the
    # process recorded for it is gone (see flytelike._storage._liveness).
    LOST = "lost"


@dataclass(slots=True)
class ActionRecord:
    """The state of one action, as kept in memory and written to the run records."""

    run_id: str
    id: str
    parent: str | None
    task: str
    task_version: str
    state: ActionState = ActionState.QUEUED
    attempts: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    cpu_millis: int = 0
    memory: int = 0
    gpus: int = 0
    peak_memory: int | None = None
    cpu_time: float | None = None
    error: str | None = None
    error_type: str | None = None
    platform: str = "local"
    cache_key: str | None = None
    # The last characters the action printed (at most twice TAIL_CHARS, see flytelike._executor._logs): the whole
    # output is in the run's log files. None until the action first prints: most never do, and a list per action
    # weighs on memory and the collector.
    logs: list[str] | None = None
    failure_kind: str | None = None  # a FailureKind value (user, system, oom, timeout, infra) when it failed
    group_name: str | None = None  # the fl.group it was started in
    # Kept only by runs that record outputs (so that a rerun can recover them): the digest of the task's
    # identity and inputs, and the outputs' literal bytes once it succeeded.
    inputs_digest: str | None = None
    outputs: bytes | None = None
    recovered_from: str | None = None  # the run whose recorded outputs it reused (state RECOVERED)
    log_path: str | None = None  # the folder of its attempts' log files (<attempt>.log), once one was written

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


@dataclass(slots=True)
class RunRecord:
    """One run: its root task, state and timing, and the process running it.

    ``pid`` and ``host`` name the process (the controller) that runs it, and ``heartbeat`` is the last time
    (epoch seconds) that process was seen alive; readers use them to tell a run still going from one whose
    process died without recording its end (reported as ``RunState.LOST``).
    """

    id: str
    task: str
    state: RunState = RunState.RUNNING
    created: float = field(default_factory=time.time)
    ended: float | None = None
    error: str | None = None
    platform: str = "local"
    inputs_json: str = "{}"
    outputs_json: str | None = None
    actions: int = 0
    pid: int | None = None
    host: str = ""
    heartbeat: float | None = None
    labels_json: str = "{}"  # the run's labels (Runner.with_context(labels=...)), a JSON object
    # What a rerun needs: the inputs as literal bytes (a serialized LiteralMap; inputs_json only shows them), the
    # file that defines the task, and the run this one reran.
    inputs: bytes | None = None
    file: str = ""
    rerun_of: str | None = None


@dataclass(frozen=True, slots=True)
class Recovered:
    """A succeeded action of an earlier run, as a rerun with ``--recover`` may reuse it.

    Attributes:
        run_id: the earlier run.
        inputs_digest: the digest of the action's task identity and inputs (see ``recovery_digest``).
        outputs: its outputs' literal bytes.
    """

    run_id: str
    inputs_digest: str
    outputs: bytes


@dataclass(frozen=True, slots=True)
class Resumed:
    """Where an action stood, as its run's records say, when the controller running it stopped.

    A controller taking the run over (``flytelike serve`` after a restart) gives the executor one per recorded
    action: the action goes on from there instead of starting afresh, and the attempt that may have been started
    is handed to its backend as resumed (found by its deterministic name, never started twice).

    Attributes:
        state: the latest recorded state.
        attempt: the attempt that state belongs to (0: none had started).
        user_retries: retries of the task's own budget spent (USER and OOM failures).
        system_retries: retries of the SYSTEM/INFRA budget spent.
        oom_retries: how many times memory was escalated after an out-of-memory failure.
        error: the recorded error of a failed action.
        kind: the recorded failure kind of a failed action.
    """

    state: ActionState
    attempt: int
    user_retries: int = 0
    system_retries: int = 0
    oom_retries: int = 0
    error: str = ""
    kind: str = ""
