"""The controller's side of one run's calls from tasks running elsewhere (the ``RunCalls`` of ActionService).

A task in another process that calls a task sends its ``SubmitChild``; it becomes a child action of the caller's
action here, with the id the caller numbered (so a retried caller re-submitting the same id gets the first
submission's outcome instead of a second child). Files its inputs name come from the store; files its outputs name
go to the store before the answer goes back, and outputs too large for one message go as a store object.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING

import anyio

from flytelike._executor import ActionRecord, ExecTask, Spawner, Values
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._storage import data_key, download_refs, upload_refs
from flytelike._worker import _frames
from flytelike.errors import BackendError

if TYPE_CHECKING:
    from flytelike._backends._remote._services import RemoteServices

__all__ = ["RunCalls"]

RESUME_WAIT_SECONDS = 120.0
"""How long a call from an attempt of a run being taken over waits for that attempt to be found again."""


class RunCalls:
    """Serves the calls, logs and heartbeats of one run's attempts that run elsewhere."""

    def __init__(self, run: Spawner, services: RemoteServices, *, resuming: bool = False) -> None:
        self._run = run
        self._services = services
        self.resuming = resuming
        self._started = anyio.Event()
        self._actions: dict[str, tuple[ActionRecord, ExecTask]] = {}
        self._out: Counter[str] = Counter()
        self._streamed: set[tuple[str, int]] = set()
        self.heartbeats: dict[tuple[str, int], int] = {}

    def started(self, action: ActionRecord, task: ExecTask, attempt: int) -> None:
        self._actions[action.id] = (action, task)
        self._out[action.id] += 1
        if self.resuming:
            self._started.set()
            self._started = anyio.Event()

    def ended(self, action: ActionRecord) -> int:
        """Forget the action once its last attempt out is over; how many attempts of the run are still out."""
        self._out[action.id] -= 1
        if self._out[action.id] <= 0:
            del self._out[action.id]
            self._actions.pop(action.id, None)
        return sum(self._out.values())

    def streamed(self, action_id: str, attempt: int) -> bool:
        return (action_id, attempt) in self._streamed

    async def submit(self, action_id: str, attempt: int, child: worker_pb2.SubmitChild) -> worker_pb2.ChildResult:
        found = self._actions.get(action_id)
        if found is None and self.resuming:
            found = await self._found_again(action_id)
        if found is None:
            error = BackendError(f"action {action_id} of run {self._run.id} is not running: its call is refused")
            return worker_pb2.ChildResult(call=child.call, error=_frames.call_error(error))
        parent, caller = found
        services = self._services
        try:
            store = await services.store()
            if child.WhichOneof("inputs_ref") == "inputs_uri":
                inputs = await store.get(_key_in(store.url(data_key("0" * 64)), child.inputs_uri))
            else:
                inputs = child.inputs
            inputs = await download_refs(inputs, store, services.data_dir)
            task = services.in_process.exec_task_called(child.template, caller)
            outputs: Values = await self._run.spawn(parent, task, Values(data=inputs), action_id=child.child_action_id)
            data = await upload_refs(outputs.data(), store)
            if len(data) > _frames.INLINE_BYTES:
                key = data_key(hashlib.sha256(data).hexdigest())
                await store.put(key, data)
                result = worker_pb2.ChildResult(call=child.call, outputs_uri=store.url(key))
            else:
                result = worker_pb2.ChildResult(call=child.call, outputs=data)
        except Exception as e:
            result = worker_pb2.ChildResult(call=child.call, error=_frames.call_error(e))
        # The caller hears of the child's end only once its records hold it: a controller taking the run over after a
        # crash must never have to run again a child whose caller has already moved on.
        await self._run.durable()
        return result

    async def _found_again(self, action_id: str) -> tuple[ActionRecord, ExecTask] | None:
        # A task that called back before the controller restarted calls again as soon as it is back, which may be
        # before the run's resumed action has found the task's pod or job and started its attempt here.
        with anyio.move_on_after(RESUME_WAIT_SECONDS):
            while (found := self._actions.get(action_id)) is None:
                await self._started.wait()
            return found
        return None

    def logs(self, action_id: str, attempt: int, data: bytes) -> None:
        if action_id not in self._actions or not data:
            return
        self._streamed.add((action_id, attempt))
        # The task's process sends stdout and stderr as one stream, interleaved as written.
        self._run.logs.append(action_id, attempt, data, "all")

    def heartbeat(self, action_id: str, attempt: int) -> None:
        key = (action_id, attempt)
        self.heartbeats[key] = self.heartbeats.get(key, 0) + 1


def _key_in(any_data_url: str, url: str) -> str:
    """The store key of ``url``, a data object of the same store (refused otherwise)."""
    base = any_data_url[: any_data_url.index("data/sha256/")]
    if not url.startswith(base + "data/sha256/"):
        raise BackendError(f"call inputs at {url} are not in this run's store ({base})")
    return url[len(base) :]
