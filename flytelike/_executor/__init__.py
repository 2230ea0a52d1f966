"""The executor: runs action graphs on backends, speaking task templates and literal values only."""

from flytelike._executor._events import Event, FailureKind
from flytelike._executor._executor import Executor, ExecutorInput
from flytelike._executor._logs import STREAMS, TAIL_CHARS, LogSink, Stream, TailOnly, keep_tail
from flytelike._executor._model import ActionRecord, ActionState, ExecTask, Recovered, RunRecord, RunState
from flytelike._executor._protocols import (
    AdmitInput,
    AttemptInput,
    AttemptResult,
    Backend,
    CacheStore,
    Lease,
    Recorder,
    Spawner,
)
from flytelike._executor._run import Run, RunInput
from flytelike._executor._values import Encoder, Values

__all__ = [
    "STREAMS",
    "TAIL_CHARS",
    "ActionRecord",
    "ActionState",
    "AdmitInput",
    "AttemptInput",
    "AttemptResult",
    "Backend",
    "CacheStore",
    "Encoder",
    "Event",
    "ExecTask",
    "Executor",
    "ExecutorInput",
    "FailureKind",
    "Lease",
    "LogSink",
    "Recorder",
    "Recovered",
    "Run",
    "RunInput",
    "RunRecord",
    "RunState",
    "Spawner",
    "Stream",
    "TailOnly",
    "Values",
    "keep_tail",
]
