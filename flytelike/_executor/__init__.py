"""The executor: runs action graphs on backends, speaking task templates and values only."""

from flytelike._executor._admission import Admission, Capacity, Request
from flytelike._executor._executor import Executor, ResourcePolicy
from flytelike._executor._model import ActionRecord, ActionState, ExecTask, RunRecord, RunState
from flytelike._executor._protocols import Backend, CacheStore, Codec, Host, Invoker, Recorder, Spawner
from flytelike._executor._run import Run

__all__ = [
    "ActionRecord",
    "ActionState",
    "Admission",
    "Backend",
    "CacheStore",
    "Capacity",
    "Codec",
    "ExecTask",
    "Executor",
    "Host",
    "Invoker",
    "Recorder",
    "Request",
    "ResourcePolicy",
    "Run",
    "RunRecord",
    "RunState",
    "Spawner",
]
