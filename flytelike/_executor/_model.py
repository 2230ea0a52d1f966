"""The executor's own view of a task (compiled once from its TaskTemplate) and of runs and actions.

The executor never sees SDK objects: it reads everything it needs from the protobuf template into plain, fast
fields here, so that the per-action path does no protobuf or Decimal work.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from flytelike._proto.core.v1 import tasks_pb2
from flytelike._quantity import Quantity
from flytelike._retries import escalate_memory, retry_delay

__all__ = ["ActionRecord", "ActionState", "ExecTask", "Recovered", "RunRecord", "RunState"]

_R = tasks_pb2.Resources


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


def _entries(entries: Any) -> dict[int, Quantity]:
    return {e.name: Quantity.parse(e.value, field="template.resources") for e in entries}


@dataclass(frozen=True, slots=True)
class ExecTask:
    """What the executor needs of one task version, read from its template.

    Amounts are integers in the smallest unit that matters locally (millicores, bytes, whole devices) so that
    admission is plain integer arithmetic.
    """

    key: str
    name: str
    version: str
    template: tasks_pb2.TaskTemplate
    cpu_millis: int
    cpu_limit_millis: int
    memory: int
    memory_limit: int
    gpus: int
    gpu_device: str
    retries: int
    backoff_initial: float
    backoff_multiplier: float
    backoff_max: float | None
    oom_factor: float | None
    oom_cap: int | None
    timeout: float | None
    cache: bool
    cache_version: str
    cache_ttl: float | None
    cache_ignored: frozenset[str]
    platform: str
    process: bool
    # Only read when set: a task with no deadline and a plain cache never looks at them.
    deadline: float | None = None
    cache_overwrite: bool = False
    cache_serialize: bool = False
    cache_salt: str = ""
    outputs: frozenset[str] = frozenset()

    @classmethod
    def from_template(cls, template: tasks_pb2.TaskTemplate) -> ExecTask:
        res = template.container.resources
        req, lim = _entries(res.requests), _entries(res.limits)

        def whole(q: Quantity | None, unit: int = 1) -> int:
            return 0 if q is None else q.ceil_to(unit)

        md = template.metadata
        rp = md.retries
        backoff = rp.backoff if rp.HasField("backoff") else None
        oom = rp.oom_escalation if rp.HasField("oom_escalation") else None
        kind = template.platform.WhichOneof("kind") if template.HasField("platform") else None
        accel = template.extended_resources.gpu_accelerator
        return cls(
            key=f"{template.id.name}@{template.id.version}",
            name=template.id.name,
            version=template.id.version,
            template=template,
            cpu_millis=int(req[_R.CPU].milli()) if _R.CPU in req else 0,
            cpu_limit_millis=int(lim[_R.CPU].milli()) if _R.CPU in lim else 0,
            memory=whole(req.get(_R.MEMORY)),
            memory_limit=whole(lim.get(_R.MEMORY)),
            gpus=whole(req.get(_R.GPU)),
            gpu_device=accel.device,
            retries=rp.retries,
            backoff_initial=backoff.initial_delay.ToTimedelta().total_seconds() if backoff else 0.0,
            backoff_multiplier=backoff.multiplier if backoff else 1.0,
            backoff_max=(
                backoff.max_delay.ToTimedelta().total_seconds() if backoff and backoff.HasField("max_delay") else None
            ),
            oom_factor=oom.memory_factor if oom else None,
            oom_cap=Quantity.parse(oom.memory_cap).ceil_to(1) if oom and oom.memory_cap else None,
            timeout=md.timeout.ToTimedelta().total_seconds() if md.HasField("timeout") else None,
            cache=md.cache_enabled,
            cache_version=md.cache_version,
            cache_ttl=md.cache_ttl.ToTimedelta().total_seconds() if md.HasField("cache_ttl") else None,
            cache_ignored=frozenset(md.cache_ignored_inputs),
            platform=kind or "",
            process=kind == "local" and template.platform.local.process,
            deadline=md.deadline.ToTimedelta().total_seconds() if md.HasField("deadline") else None,
            cache_overwrite=md.cache_overwrite,
            cache_serialize=md.cache_serializable,
            cache_salt=md.cache_salt,
            outputs=frozenset(v.name for v in template.interface.outputs.variables),
        )

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return retry_delay(
            retry, initial=self.backoff_initial, multiplier=self.backoff_multiplier, maximum=self.backoff_max
        )

    def escalated_memory(self, memory: int) -> int:
        """Memory for the attempt after an out-of-memory failure at ``memory`` bytes."""
        return escalate_memory(memory, self.oom_factor, self.oom_cap)


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
