"""The bridge between SDK tasks and the executor: task index, in-process invoker, submitter and value codec.

The executor speaks templates and values; this module is the one place that maps a template back to the Python
function it came from, sets the run context so that nested calls become child actions, and turns values into
their wire form for the cache and for other processes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from flytelike import _context
from flytelike._executor import ExecTask, Spawner
from flytelike._executor._capture import sink
from flytelike._executor._model import ActionRecord
from flytelike._loader import tasks_in
from flytelike._platforms import Platform
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._serde import decode_values, encode_values, task_template
from flytelike._task import Task
from flytelike.errors import BackendError

__all__ = ["Invoker", "Submitter", "TaskIndex", "ValueCodec"]


class TaskIndex:
    """SDK tasks of one run and their compiled executor views, built once per task."""

    def __init__(self, with_platform: Platform | None = None) -> None:
        self.with_platform = with_platform
        self._by_task: dict[int, ExecTask] = {}
        self._by_key: dict[str, Task[..., Any]] = {}

    def exec_task(self, task: Task[..., Any]) -> ExecTask:
        found = self._by_task.get(id(task))
        if found is not None:
            return found
        template = task_template(task, task.resolved(self.with_platform))
        compiled = ExecTask.from_template(template)
        self._by_task[id(task)] = compiled
        self._by_key[compiled.key] = task
        return compiled

    def sdk_task(self, task: ExecTask) -> Task[..., Any]:
        return self._by_key[task.key]

    def code_file(self, task: ExecTask) -> str | None:
        """The file defining a task's module, so a worker process can import it the same way."""
        module = sys.modules.get(self.sdk_task(task).fn.__module__)
        file = getattr(module, "__file__", None)
        return str(Path(file).resolve()) if file else None


class Submitter:
    """What tasks running inside an action call through (see flytelike._context.Submitter)."""

    __slots__ = ("action", "index", "loop_thread", "run")

    def __init__(self, run: Spawner, action: ActionRecord, index: TaskIndex, loop_thread: int) -> None:
        self.run = run
        self.action = action
        self.index = index
        self.loop_thread = loop_thread

    def submit(self, task: Task[..., Any], values: Mapping[str, Any]) -> Awaitable[Any]:
        if threading.get_ident() != self.loop_thread:
            # A sync task (in a worker thread) calling an async task cannot await it: run it on the run's loop
            # and block for the result, as for a sync child. (The run's state is only touched on the loop.)
            return self.submit_blocking(task, values)  # type: ignore[no-any-return]
        outputs = self.run.child(self.action, self.index.exec_task(task), values)
        return _result(task, outputs)

    def submit_blocking(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        async def call() -> Any:
            return await self.submit(task, values)

        return anyio.from_thread.run(call)

    def in_event_loop_thread(self) -> bool:
        return threading.get_ident() == self.loop_thread


async def _result(task: Task[..., Any], outputs: Awaitable[Mapping[str, Any]]) -> Any:
    return task.interface.result(await outputs)


class Invoker:
    """Runs a task's function in this process with the run context and per-action log capture in place."""

    def __init__(self, index: TaskIndex) -> None:
        self.index = index
        self.loop_thread = threading.get_ident()
        self.codec = ValueCodec(index)

    async def invoke(self, run: Spawner, action: ActionRecord, task: ExecTask, values: Mapping[str, Any]) -> Any:
        sdk = self.index.sdk_task(task)
        token = _context.use(Submitter(run, action, self.index, self.loop_thread))
        log_token = sink.set(action.logs)
        try:
            if sdk.is_async:
                result = await sdk.fn(**values)
            else:
                # A thread cannot be interrupted: on a timeout or cancellation the attempt ends at once and the
                # thread is left to finish on its own (its result is dropped), rather than delaying the run.
                result = await anyio.to_thread.run_sync(lambda: _timed(action, sdk.fn, values), abandon_on_cancel=True)
        finally:
            sink.reset(log_token)
            _context.reset(token)
        return sdk.interface.check_outputs(result, task=sdk.full_name)

    def code_file(self, task: ExecTask) -> str | None:
        return self.index.code_file(task)

    def exec_task_named(self, name: str, caller: ExecTask) -> ExecTask:
        """The task ``env.task`` that ``caller`` called from its worker process, compiled for this run.

        The worker sends only the name (after checking it is the task declared under that name), so it is found
        through the environments the caller can see: its own, those it depends on, and those its module holds.
        """
        env_name, _, short = name.rpartition(".")
        sdk = self.index.sdk_task(caller)
        module = sys.modules.get(sdk.fn.__module__)
        seen = tasks_in(module).values() if module is not None else ()
        for env in (sdk.env, *sdk.env.depends_on, *(t.env for t in seen)):
            if env.name == env_name and short in env.tasks:
                return self.index.exec_task(env.tasks[short])
        raise BackendError(
            f"task {name}, called by task {caller.name} in its worker process, is not defined in this process: "
            f"import it into the module that defines {caller.name}"
        )

    def exec_task_called(self, name: str, template: tasks_pb2.TaskTemplate, caller: ExecTask) -> ExecTask:
        """The task ``name`` that ``caller`` called from its worker process, which sent it as ``template``.

        The task declared under that name, compiled for this run (with the run's ``--with`` platform), when the
        template is that task's own; else a variant of it made by ``override()``, compiled from the template and
        run with the declared task's function.
        """
        declared = self.exec_task_named(name, caller)
        sdk = self.index.sdk_task(declared)
        if template.id.version in (declared.version, task_template(sdk, sdk.resolved(None)).id.version):
            return declared
        variant = ExecTask.from_template(template)
        self.index._by_key.setdefault(variant.key, sdk)
        return variant

    def name_outputs(self, task: ExecTask, value: Any) -> dict[str, Any]:
        sdk = self.index.sdk_task(task)
        return sdk.interface.check_outputs(value, task=sdk.full_name)


def _timed(action: ActionRecord, fn: Any, values: Mapping[str, Any]) -> Any:
    """Call a sync task in its worker thread, recording the cpu time that thread spent on it."""
    start = time.thread_time()
    try:
        return fn(**values)
    finally:
        action.cpu_time = (action.cpu_time or 0.0) + time.thread_time() - start


class ValueCodec:
    """Deterministic wire bytes of a task's inputs and outputs (literal maps)."""

    def __init__(self, index: TaskIndex) -> None:
        self.index = index

    def encode_inputs(self, task: ExecTask, values: Mapping[str, Any]) -> bytes:
        sdk = self.index.sdk_task(task)
        return encode_values(values, sdk.interface.inputs, where=sdk.full_name)

    def encode_outputs(self, task: ExecTask, outputs: Mapping[str, Any]) -> bytes:
        sdk = self.index.sdk_task(task)
        return encode_values(outputs, sdk.interface.outputs, where=f"{sdk.full_name} outputs")

    def decode_inputs(self, task: ExecTask, data: bytes) -> dict[str, Any]:
        sdk = self.index.sdk_task(task)
        return decode_values(data, sdk.interface.inputs, where=sdk.full_name)

    def decode_outputs(self, task: ExecTask, data: bytes) -> dict[str, Any]:
        sdk = self.index.sdk_task(task)
        return decode_values(data, sdk.interface.outputs, where=f"{sdk.full_name} outputs")
