"""The bridge between SDK tasks and the executor: task index, in-process invoker and submitter.

The executor speaks templates and literal values; this module is the one place that maps a template back to the
Python function it came from, sets the run context so that nested calls become child actions, and gives values
their encoder so that bytes are made only when something needs them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from flytelike._capture import ensure_capture
from flytelike._context import TaskContext
from flytelike._context import current_group as _current_group
from flytelike._context import reset_submitter as _reset_submitter
from flytelike._context import set_submitter as _set_submitter
from flytelike._executor import ActionRecord, AttemptInput, AttemptResult, ExecTask, Stream, Values
from flytelike._loader import tasks_in
from flytelike._platforms import Platform
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._reachable import reachable_tasks
from flytelike._run_context import RunContext
from flytelike._serde import decode_values, encode_values, task_template
from flytelike._task import Resolved, Task
from flytelike.errors import BackendError, TaskCodeError

__all__ = ["Compiled", "Invoker", "Submitter", "TaskIndex"]


class Compiled:
    """One SDK task as a run sees it: its executor view, and how its values are encoded and decoded."""

    __slots__ = (
        "_check_single",
        "_where_single",
        "convert",
        "encode_inputs",
        "encode_outputs",
        "exec",
        "sdk",
        "single_output",
    )

    def __init__(self, sdk: Task[..., Any], compiled: ExecTask) -> None:
        self.sdk = sdk
        self.exec = compiled
        interface = sdk.interface
        self.encode_inputs = partial(_encode, params=interface.inputs, where=sdk.full_name)
        self.encode_outputs = partial(_encode, params=interface.outputs, where=f"{sdk.full_name} outputs")
        self.single_output = interface.outputs[0].name if len(interface.outputs) == 1 else None
        self._check_single = interface.outputs[0].type.check if self.single_output is not None else None
        self._where_single = f"{sdk.full_name} -> {self.single_output}"
        # :meth:`result`, bound once: a call holds it until its action ends, and a fresh bound method per call is
        # one more object for the garbage collector to walk in every fan-out.
        self.convert = self.result

    def check_outputs(self, value: Any) -> dict[str, Any]:
        """Name and check what the task returned."""
        name = self.single_output
        if name is not None and self._check_single is not None:
            return {name: self._check_single(value, self._where_single)}
        return self.sdk.interface.check_outputs(value, task=self.sdk.full_name)

    def inputs(self, values: Values) -> Mapping[str, Any]:
        python = values.python
        if python is None:
            python = decode_values(values.data(), self.sdk.interface.inputs, where=self.sdk.full_name)
        return python

    def outputs(self, values: Values) -> Mapping[str, Any]:
        python = values.python
        if python is None:
            python = decode_values(values.data(), self.sdk.interface.outputs, where=f"{self.sdk.full_name} outputs")
        return python

    def result(self, values: Values) -> Any:
        """The Python return value of a call, from its output values."""
        python = values.python
        name = self.single_output
        if python is not None and name is not None:
            return python[name]
        return self.sdk.interface.result(self.outputs(values))


def _encode(values: Mapping[str, Any], *, params: Any, where: str) -> bytes:
    return encode_values(values, params, where=where)


class TaskIndex:
    """SDK tasks of one run and their compiled views, built once per task."""

    def __init__(self, with_platform: Platform | None = None, context: RunContext | None = None) -> None:
        self.with_platform = with_platform
        self.context = context
        self._by_task: dict[int, Compiled] = {}
        self._by_key: dict[str, Compiled] = {}

    def resolved(self, task: Task[..., Any]) -> Resolved:
        """The task's settings in this run: its own, with the run's ``--with`` platform and run-scoped defaults."""
        resolved = task.resolved(self.with_platform)
        context = self.context
        if context is None:
            return resolved
        cache = resolved.cache if context.cache else None
        if context.overwrite_cache and cache is not None:
            cache = dataclasses.replace(cache, behavior="override")
        # The run's env vars are defaults: a task's own win.
        return dataclasses.replace(resolved, env_vars={**context.env_vars, **resolved.env_vars}, cache=cache)

    def compiled(self, task: Task[..., Any]) -> Compiled:
        found = self._by_task.get(id(task))
        if found is None:
            template = task_template(task, self.resolved(task))
            found = Compiled(task, ExecTask.from_template(template))
            self._by_task[id(task)] = found
            # The task object is kept alive by the entry, so its id() cannot be reused by another task.
            self._by_key[found.exec.key] = found
        return found

    def add_variant(self, task: Task[..., Any], compiled: ExecTask) -> None:
        """Know ``compiled`` (a variant of ``task`` built elsewhere, with other options) as running ``task``'s code."""
        self._by_key.setdefault(compiled.key, Compiled(task, compiled))

    def exec_task(self, task: Task[..., Any]) -> ExecTask:
        return self.compiled(task).exec

    def of(self, task: ExecTask) -> Compiled:
        found = self._by_key.get(task.key)
        if found is None:
            raise BackendError(f"task {task.key} is not a task of this run's code")
        return found

    def code_file(self, task: ExecTask) -> str | None:
        """The file defining a task's module, so a worker process can import it the same way."""
        module = sys.modules.get(self.of(task).sdk.fn.__module__)
        file = getattr(module, "__file__", None)
        return str(Path(file).resolve()) if file else None


class Submitter:
    """What tasks running inside an action call through (see flytelike._context.Submitter)."""

    __slots__ = ("action", "attempt", "index", "loop_thread", "run", "task")

    def __init__(self, attempt: AttemptInput, index: TaskIndex, loop_thread: int) -> None:
        self.run = attempt.run
        self.action = attempt.action
        self.attempt = attempt.attempt
        self.task = attempt.task
        self.index = index
        self.loop_thread = loop_thread

    def log(self, text: str, stream: Stream = "out") -> None:
        """Keep what the action printed (flytelike._capture calls it)."""
        self.run.logs.append(self.action.id, self.attempt, text, stream)

    def submit(self, task: Task[..., Any], values: Mapping[str, Any]) -> Awaitable[Any]:
        if threading.get_ident() != self.loop_thread:
            # A sync task (in a worker thread) calling an async task cannot await it: run it on the run's loop
            # and block for the result, as for a sync child. (The run's state is only touched on the loop.)
            return self.submit_blocking(task, values)  # type: ignore[no-any-return]
        entry = self.index.compiled(task)
        label = _current_group()
        if label is not None:
            return self.run.call(  # type: ignore[no-any-return]
                self.action, entry.exec, values, entry.convert, encode=entry.encode_inputs, group=label
            )
        return self.run.call(self.action, entry.exec, values, entry.convert, encode=entry.encode_inputs)  # type: ignore[no-any-return]

    def submit_blocking(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        async def call() -> Any:
            return await self.submit(task, values)

        return anyio.from_thread.run(call)

    def in_event_loop_thread(self) -> bool:
        return threading.get_ident() == self.loop_thread

    def context(self) -> TaskContext:
        env = {**os.environ, **{kv.key: kv.value for kv in self.task.template.container.env}}
        platform = self.action.platform
        # The platform's own identifiers, as its runtime sets them in the container (the pod's hostname is its name;
        # Batch sets AWS_BATCH_*); a local attempt has none.
        kubernetes = platform == "kubernetes"
        batch = platform == "batch"
        return TaskContext(
            run_id=self.run.id,
            action_id=self.action.id,
            attempt=self.attempt,
            task=self.task.name,
            platform=platform,
            env=MappingProxyType(env),
            group=self.action.group_name,
            kubernetes_pod=env.get("HOSTNAME", "") if kubernetes else "",
            kubernetes_namespace=env.get("POD_NAMESPACE", "") if kubernetes else "",
            batch_job_id=env.get("AWS_BATCH_JOB_ID", "") if batch else "",
            batch_job_queue=env.get("AWS_BATCH_JQ_NAME", "") if batch else "",
        )


class Invoker:
    """Runs a task's function in this process with the run context and per-action log capture in place.

    It is the local backend's ``InProcess``: the only code that calls users' functions in the controller's process.
    """

    def __init__(self, index: TaskIndex) -> None:
        self.index = index
        self.loop_thread = threading.get_ident()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._called: dict[str, ExecTask] = {}
        # Tasks known only by their templates (runs started from a template, whose code is not here).
        self._templates: set[str] = set()

    def from_template(self, task: ExecTask) -> bool:
        """Whether ``task`` is known only by its template (its code is not in this process)."""
        return task.key in self._templates

    def add_template_task(self, task: ExecTask) -> None:
        """Know ``task`` by its template alone: it runs elsewhere, and the tasks it calls are taken as they come."""
        self._templates.add(task.key)

    @property
    def threads_running(self) -> int:
        """Sync tasks still running in threads (one that timed out or was cancelled runs on until it returns)."""
        return self._busy

    async def invoke(self, attempt: AttemptInput) -> AttemptResult:
        if attempt.task.key in self._templates:
            raise BackendError(
                f"task {attempt.task.name} cannot run in this process: its code is not here (it came as a template); "
                "give it a platform that runs it elsewhere (--with kubernetes, fl.Batch(...))"
            )
        entry = self.index.of(attempt.task)
        action = attempt.action
        sdk = entry.sdk
        values = entry.inputs(attempt.inputs)
        ensure_capture()
        token = _set_submitter(Submitter(attempt, self.index, self.loop_thread))
        try:
            if sdk.is_async:
                result = await sdk.fn(**values)
            else:
                # A thread cannot be interrupted: on a timeout or cancellation the attempt ends at once and the
                # thread is left to finish on its own (its result is dropped), rather than delaying the run.
                result = await anyio.to_thread.run_sync(
                    lambda: self._in_thread(action, sdk.fn, values), abandon_on_cancel=True
                )
        except SystemExit as e:
            # The task's own exit, not this process's: a failed attempt with its exit code, like a task that ends
            # its process in a worker or a container.
            raise TaskCodeError(
                "SystemExit", f"the task called sys.exit() with exit code {e.code!r}", _traceback(e)
            ) from None
        finally:
            _reset_submitter(token)
        return AttemptResult(Values(entry.check_outputs(result), encode=entry.encode_outputs))

    # --- what a worker process of the local backend needs from this process's code ----------------------------

    def code_file(self, task: ExecTask) -> str | None:
        if task.key in self._templates:
            return None
        return self.index.code_file(task)

    def may_call(self, task: ExecTask) -> bool:
        """Whether the task's code refers to another task (so a process running it needs its controller).

        A task known only by its template may: its code cannot be read here.
        """
        if task.key in self._templates:
            return True
        sdk = self.index.of(task).sdk
        return len(reachable_tasks(sdk)) > 1

    def exec_task_called(self, template: bytes, caller: ExecTask) -> ExecTask:
        """The task a worker process called (its template as the worker built it), compiled for this run.

        The worker's template is the task as declared, with no run platform applied. When it is the task this run
        knows under that name, the run's own compilation is used (so ``--with`` applies to it like to any task);
        otherwise it is a variant (``task.override(...)`` made in the worker) and runs as its template says.
        """
        parsed = tasks_pb2.TaskTemplate.FromString(template)
        key = f"{parsed.id.name}@{parsed.id.version}"
        found = self._called.get(key)
        if found is not None:
            return found
        if caller.key in self._templates:
            # The caller's code is not here, nor is the called task's: its template is all there is.
            found = self._called[key] = ExecTask.from_template(parsed)
            self._templates.add(found.key)
            return found
        base = self.index.of(self.exec_task_named(parsed.id.name, caller))
        if parsed.id.version in (base.exec.version, task_template(base.sdk, base.sdk.resolved(None)).id.version):
            found = base.exec
        else:
            found = ExecTask.from_template(parsed)
            self.index.add_variant(base.sdk, found)
        self._called[key] = found
        return found

    def exec_task_named(self, name: str, caller: ExecTask) -> ExecTask:
        """The task ``env.task`` that ``caller`` called from its worker process, compiled for this run.

        It is found through the environments the caller can see: its own, those it depends on, and those its module
        holds.
        """
        env_name, _, short = name.rpartition(".")
        sdk = self.index.of(caller).sdk
        module = sys.modules.get(sdk.fn.__module__)
        seen = tasks_in(module).values() if module is not None else ()
        for env in (sdk.env, *sdk.env.depends_on, *(t.env for t in seen)):
            if env.name == env_name and short in env.tasks:
                return self.index.exec_task(env.tasks[short])
        raise BackendError(
            f"task {name}, called by task {caller.name} in its worker process, is not defined in this process: "
            f"import it into the module that defines {caller.name}"
        )

    def _in_thread(self, action: ActionRecord, fn: Any, values: Mapping[str, Any]) -> Any:
        """Call a sync task in its worker thread, recording the cpu time that thread spent on it."""
        with self._busy_lock:
            self._busy += 1
        start = time.thread_time()
        try:
            return fn(**values)
        finally:
            action.cpu_time = (action.cpu_time or 0.0) + time.thread_time() - start
            with self._busy_lock:
                self._busy -= 1


def _traceback(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))
