"""The interfaces the executor is given, so it depends on no SDK object, storage engine or backend."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol

from flytelike._executor._admission import Admission, Request
from flytelike._executor._model import ActionRecord, ExecTask, RunRecord

__all__ = ["Backend", "CacheStore", "Codec", "Host", "Invoker", "Recorder", "Spawner"]


class Spawner(Protocol):
    """The part of a run that backends and invokers see: its id, and starting child actions."""

    id: str

    def child(self, parent: ActionRecord, task: ExecTask, values: Mapping[str, Any]) -> Coroutine[Any, Any, Any]:
        """A child action of ``parent``; its id is taken at the call, so ids follow the order of calls."""
        ...


class Invoker(Protocol):
    """Runs a task's code in this process, with the run's submitter current so that it can call tasks."""

    async def invoke(self, run: Spawner, action: ActionRecord, task: ExecTask, values: Mapping[str, Any]) -> Any: ...


class Backend(Protocol):
    """Runs one attempt of an action somewhere (this process, a child process, a pod, a Batch job)."""

    name: str

    async def run_attempt(
        self, run: Spawner, action: ActionRecord, task: ExecTask, values: Mapping[str, Any], memory: int
    ) -> Mapping[str, Any]:
        """Run the attempt; return its named outputs. ``memory`` is this attempt's memory in bytes (it grows
        after an out-of-memory failure). Raise OutOfMemoryError for an out-of-memory kill."""
        ...


class Codec(Protocol):
    """Turns a task's values into deterministic bytes and back (the literal wire format)."""

    def encode_inputs(self, task: ExecTask, values: Mapping[str, Any]) -> bytes: ...

    def encode_outputs(self, task: ExecTask, outputs: Mapping[str, Any]) -> bytes: ...

    def decode_outputs(self, task: ExecTask, data: bytes) -> dict[str, Any]: ...


class Recorder(Protocol):
    """Persists runs and actions; called from a worker thread, never on the event loop."""

    def write(self, run: RunRecord, actions: Sequence[ActionRecord]) -> None: ...


class CacheStore(Protocol):
    """Outputs by cache key; called from a worker thread."""

    def get(self, key: str) -> tuple[bytes, float] | None:
        """The stored outputs and the time (epoch seconds) they were stored, or None."""
        ...

    def put(self, key: str, data: bytes) -> None: ...


class Host(Protocol):
    """What a run needs from the executor that runs it."""

    admission: Admission
    codec: Codec
    cache: CacheStore

    def backend_for(self, platform: str, *, task: str = "") -> Backend: ...

    def local_request(self, task: ExecTask, request: Request, action: str) -> Request: ...
