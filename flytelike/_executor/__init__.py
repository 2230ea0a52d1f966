"""The executor: runs action graphs on backends, speaking task templates and literal values only.

Names load on first use: a reader of the run records needs their dataclasses, not the executor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flytelike._executor._events import Event, FailureKind
    from flytelike._executor._exec_task import ExecTask
    from flytelike._executor._executor import Executor, ExecutorInput
    from flytelike._executor._logs import STREAMS, TAIL_CHARS, LogSink, Stream, TailOnly, keep_tail
    from flytelike._executor._model import ActionRecord, ActionState, Recovered, Resumed, RunRecord, RunState
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
    from flytelike._executor._run import Run
    from flytelike._executor._run_input import RunInput
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
    "Resumed",
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

_MODULES = {
    "ActionRecord": "flytelike._executor._model",
    "ActionState": "flytelike._executor._model",
    "AdmitInput": "flytelike._executor._protocols",
    "AttemptInput": "flytelike._executor._protocols",
    "AttemptResult": "flytelike._executor._protocols",
    "Backend": "flytelike._executor._protocols",
    "CacheStore": "flytelike._executor._protocols",
    "Encoder": "flytelike._executor._values",
    "Event": "flytelike._executor._events",
    "ExecTask": "flytelike._executor._exec_task",
    "Executor": "flytelike._executor._executor",
    "ExecutorInput": "flytelike._executor._executor",
    "FailureKind": "flytelike._executor._events",
    "Lease": "flytelike._executor._protocols",
    "LogSink": "flytelike._executor._logs",
    "Recorder": "flytelike._executor._protocols",
    "Recovered": "flytelike._executor._model",
    "Resumed": "flytelike._executor._model",
    "Run": "flytelike._executor._run",
    "RunInput": "flytelike._executor._run_input",
    "RunRecord": "flytelike._executor._model",
    "RunState": "flytelike._executor._model",
    "STREAMS": "flytelike._executor._logs",
    "Spawner": "flytelike._executor._protocols",
    "Stream": "flytelike._executor._logs",
    "TAIL_CHARS": "flytelike._executor._logs",
    "TailOnly": "flytelike._executor._logs",
    "Values": "flytelike._executor._values",
    "keep_tail": "flytelike._executor._logs",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found once: later lookups are plain module attributes
    return value
