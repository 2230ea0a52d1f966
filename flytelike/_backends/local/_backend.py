"""The local backend: async tasks in this process, ``Local(process=True)`` tasks in a warm child process.

In a child process the task's memory limit is enforced, its cpu is pinned when it asks for whole cores, and
``CUDA_VISIBLE_DEVICES`` shows it the GPUs it was given (and none when it asked for none). Tasks it calls come back
to this process as child actions of its action, run here or in another worker like any other action.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, Protocol

import anyio

from flytelike._backends.local._process_pool import ChildCall, OnCall, ProcessJob, ProcessPool
from flytelike._executor import ActionRecord, Capacity, ExecTask, Spawner
from flytelike._proto.core.v1 import tasks_pb2
from flytelike.errors import OutOfMemoryError

__all__ = ["LocalBackend"]


class _Codec(Protocol):
    def encode_inputs(self, task: ExecTask, values: Mapping[str, Any]) -> bytes: ...

    def decode_inputs(self, task: ExecTask, data: bytes) -> dict[str, Any]: ...

    def encode_outputs(self, task: ExecTask, outputs: Mapping[str, Any]) -> bytes: ...

    def decode_outputs(self, task: ExecTask, data: bytes) -> dict[str, Any]: ...


class _Invoker(Protocol):
    async def invoke(self, run: Spawner, action: ActionRecord, task: ExecTask, values: Mapping[str, Any]) -> Any: ...

    def name_outputs(self, task: ExecTask, value: Any) -> dict[str, Any]: ...

    def code_file(self, task: ExecTask) -> str | None: ...

    def exec_task_named(self, name: str, caller: ExecTask) -> ExecTask: ...

    def exec_task_called(self, name: str, template: tasks_pb2.TaskTemplate, caller: ExecTask) -> ExecTask: ...

    @property
    def codec(self) -> _Codec: ...


class LocalBackend:
    """Runs attempts on this machine."""

    name = "local"

    def __init__(self, invoker: _Invoker, capacity: Capacity, stack: AsyncExitStack, *, workers: int) -> None:
        self.invoker = invoker
        self.capacity = capacity
        self._stack = stack
        self._workers = workers
        self._pool: ProcessPool | None = None
        self._pool_lock = anyio.Lock()
        self._free_cpus = set(range(capacity.cpu_millis // 1000))
        self._free_gpus = set(range(capacity.gpus))
        self._called: dict[tuple[str, str], ExecTask] = {}
        self._templates: dict[str, bytes] = {}

    async def start_pool(self) -> ProcessPool:
        """Start the warm workers (once); the run's exit stack stops them."""
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await self._stack.enter_async_context(ProcessPool(self._workers))
            return self._pool

    async def run_attempt(
        self, run: Spawner, action: ActionRecord, task: ExecTask, values: Mapping[str, Any], memory: int
    ) -> Mapping[str, Any]:
        if not task.process:
            return await self.invoker.invoke(run, action, task, values)  # type: ignore[no-any-return]
        pool = self._pool or await self.start_pool()
        cpus = self._take(self._free_cpus, task.cpu_millis // 1000 if task.cpu_millis % 1000 == 0 else 0)
        gpus = self._take(self._free_gpus, task.gpus)
        env = {kv.key: kv.value for kv in task.template.container.env}
        codec = self.invoker.codec
        template = self._templates.get(task.key)
        if template is None:
            template = self._templates[task.key] = task.template.SerializeToString(deterministic=True)
        job = ProcessJob(
            run_id=run.id,
            action_id=action.id,
            attempt=action.attempts,
            template=template,
            inputs=codec.encode_inputs(task, values),
            code_file=self.invoker.code_file(task),
            memory_limit=memory,
            cpus=tuple(sorted(cpus)),
            cuda_visible_devices=",".join(map(str, sorted(gpus))) if self.capacity.gpus else None,
            env=env,
        )
        try:
            result = await pool.run(job, on_call=self._calls_from(run, action, task))
        except OutOfMemoryError as e:
            action.peak_memory = getattr(e, "peak_memory", None)
            raise
        finally:
            self._free_cpus |= cpus
            self._free_gpus |= gpus
        action.peak_memory = result.peak_memory
        action.cpu_time = result.cpu_time
        if result.logs:
            action.logs.append(result.logs)
        return codec.decode_outputs(task, result.outputs)

    def _calls_from(self, run: Spawner, action: ActionRecord, caller: ExecTask) -> OnCall:
        """Runs the calls a process-isolated attempt makes as child actions of its action."""
        codec = self.invoker.codec

        async def on_call(call: ChildCall) -> bytes:
            task = self._called_task(caller, call)
            values = codec.decode_inputs(task, call.inputs)
            # run.child() takes the child's id before the first await, and the pool starts calls one at a time in
            # the order the worker made them: ids follow the order of the calls, as for an in-process parent.
            outputs = await run.child(action, task, values)
            return codec.encode_outputs(task, outputs)

        return on_call

    def _called_task(self, caller: ExecTask, call: ChildCall) -> ExecTask:
        """The child's compiled task: the one this run declared under its name, or the variant the call sent."""
        key = (caller.key, call.task)
        found = self._called.get(key)
        if found is None:
            name = call.task.rpartition("@")[0]
            template = tasks_pb2.TaskTemplate.FromString(call.template)
            found = self._called[key] = self.invoker.exec_task_called(name, template, caller)
        return found

    @staticmethod
    def _take(free: set[int], n: int) -> set[int]:
        if n <= 0 or n > len(free):
            return set()
        taken = set(sorted(free)[:n])
        free -= taken
        return taken
