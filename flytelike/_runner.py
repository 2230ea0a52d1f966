"""Running tasks: ``fl.run`` (blocking), ``fl.run_async`` and the :class:`Runner` they use.

A run executes on this machine by default, with no server and no account. ``platform`` (the ``--with`` option of
the CLI) sends every task without a platform of its own to that platform.

Example:
    >>> import flytelike as fl
    >>> env = fl.TaskEnvironment(name="doc-run")
    >>> @env.task
    ... async def square(x: int) -> int:
    ...     return x * x
    >>> @env.task
    ... async def total(n: int = 3) -> int:
    ...     import asyncio
    ...     return sum(await asyncio.gather(*(square(i) for i in range(n))))
    >>> fl.run(total, n=4).outputs
    14
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import time
import types
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio

from flytelike._backends.local import LocalBackend
from flytelike._config import ResourcePolicy, Settings, load_settings
from flytelike._executor import Capacity, ExecTask, Executor, Run, RunRecord
from flytelike._executor._capture import capturing
from flytelike._invoke import Invoker, TaskIndex, ValueCodec
from flytelike._platform_spec import parse_platform_spec
from flytelike._platforms import Platform
from flytelike._storage import CacheStore, RecordStore
from flytelike._task import Task
from flytelike.errors import SpecError

__all__ = ["RunHandle", "Runner", "run", "run_async"]


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A finished run.

    Attributes:
        id: the run id (``flytelike runs show ID``).
        task: the root task's name.
        state: ``succeeded`` (a failed run raises instead of returning a handle).
        outputs: the root task's return value.
        record: the run record (timings, action count).
    """

    id: str
    task: str
    state: str
    outputs: Any
    record: RunRecord


def _run_id() -> str:
    return time.strftime("r%Y%m%d-%H%M%S-", time.localtime()) + secrets.token_hex(3)


def _json(values: dict[str, Any]) -> str:
    return json.dumps(values, default=repr, sort_keys=True)[:10_000]


def reachable_tasks(root: Task[..., Any]) -> list[Task[..., Any]]:
    """Tasks ``root`` can call, found from the names its code (and theirs) refers to.

    Used to refuse a run before anything starts when a task in it can never fit this machine.
    """
    seen: dict[int, Task[..., Any]] = {id(root): root}
    todo = [root]
    while todo:
        task = todo.pop()
        fn = task.fn
        names = set(_names(fn.__code__))
        scope = {**getattr(fn, "__globals__", {}), **_closure(fn)}
        for name in names:
            value = scope.get(name)
            if isinstance(value, Task) and id(value) not in seen:
                seen[id(value)] = value
                todo.append(value)
    return list(seen.values())


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _closure(fn: Any) -> dict[str, Any]:
    cells = getattr(fn, "__closure__", None) or ()
    out = {}
    for name, cell in zip(fn.__code__.co_freevars, cells, strict=False):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return out


def _in_process_env(tasks: list[ExecTask], run_platform: str) -> dict[str, str]:
    """The env_vars of the tasks this run executes in this process, which share one process environment.

    Process-isolated and remote tasks get their own variables; in-process tasks get them for the whole run, as
    long as no two of them disagree on a value (then the variable is left alone, with a warning).
    """
    values: dict[str, set[str]] = {}
    for t in tasks:
        if (t.platform or run_platform) != "local" or t.process:
            continue
        for kv in t.template.container.env:
            values.setdefault(kv.key, set()).add(kv.value)
    env = {}
    for key, options in sorted(values.items()):
        if len(options) == 1:
            env[key] = options.pop()
        else:
            warnings.warn(
                f"tasks of this run set {key} to different values ({', '.join(sorted(options))}); in-process tasks "
                f"share one environment, so {key} is left as it is. Give them fl.Local(process=True) to isolate them.",
                UserWarning,
                stacklevel=3,
            )
    return env


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _gpu_names() -> tuple[str, ...]:
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        result = await anyio.run_process(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], check=False)
    except OSError:
        return ()
    if result.returncode != 0:
        return ()
    return tuple(line.strip() for line in result.stdout.decode().splitlines() if line.strip())


class Runner:
    """Runs tasks with a set of options.

    Args:
        platform: a platform (``"kubernetes"``, ``"batch:queue=q"`` or a platform object) for every task that
            has none; ``None`` runs them on this machine.
        local_resources: how local runs treat Resources (``check``, ``strict`` or ``ignore``); default from the
            configuration (``[local] resources``).
        settings: resolved settings; default: read from the configuration files and environment.
        progress: an async function given the live run while it executes (the CLI's progress view); it is
            cancelled when the run ends.
    """

    def __init__(
        self,
        *,
        platform: Platform | str | None = None,
        local_resources: ResourcePolicy | None = None,
        settings: Settings | None = None,
        progress: Callable[[Run], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.progress = progress
        self._active: set[Run] = set()
        self.settings = settings or load_settings()
        self.platform = parse_platform_spec(platform) if isinstance(platform, str) else platform
        if self.platform is not None and not isinstance(self.platform, Platform):
            raise SpecError("platform", platform, "not a platform", accepted="'kubernetes', 'batch:queue=q'")
        self.local_resources: ResourcePolicy = local_resources or self.settings.local.resources

    def cancel(self) -> None:
        """Cancel the runs this runner is executing: every running action stops and each run is recorded as
        aborted (their ``run_async`` raises CancelledError). Call it from the event loop the runs execute on."""
        for run in list(self._active):
            run.cancel_scope.cancel()

    def run(self, task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
        """Run ``task`` to completion and return its handle; raises the task's error if it failed."""
        return anyio.run(lambda: self.run_async(task, *args, **inputs))

    async def run_async(self, task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
        """As :meth:`run`, from inside an event loop."""
        if not isinstance(task, Task):
            raise SpecError("run", task, "not a task", accepted="a function decorated with @env.task")
        index = TaskIndex(self.platform)
        values = task.interface.bind(args, inputs, task=task.full_name)
        root = index.exec_task(task)
        platform_name = self.platform.name if self.platform is not None else "local"
        capacity = Capacity.of_this_machine(await _gpu_names())
        invoker = Invoker(index)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        async with AsyncExitStack() as stack:
            recorder = stack.enter_context(RecordStore(self.settings.db_path))
            cache = stack.enter_context(CacheStore(self.settings.home / "cache.sqlite3"))
            local = LocalBackend(
                invoker, capacity, stack, workers=self.settings.local.workers or capacity.cpu_millis // 1000
            )
            executor = Executor(
                backends={"local": local},
                codec=ValueCodec(index),
                recorder=recorder,
                cache=cache,
                capacity=capacity,
                resource_policy=self.local_resources,
            )
            tasks = [index.exec_task(t) for t in reachable_tasks(task)]
            for t in tasks:
                executor.backend_for(t.platform or platform_name, task=t.name)
            executor.check_local(tasks)
            if any(t.process for t in tasks if t.platform in ("", "local")):
                await local.start_pool()
            stack.enter_context(_environment(_in_process_env(tasks, platform_name)))
            run = executor.new_run(_run_id(), root, platform=platform_name, inputs_json=_json(values))
            self._active.add(run)
            failure: Exception | None = None
            try:
                with capturing():
                    async with anyio.create_task_group() as tg:
                        if self.progress is not None:
                            tg.start_soon(self.progress, run)
                        try:
                            outputs = await executor.execute(run, root, values)
                        except Exception as e:  # re-raised below, outside the task group, unwrapped
                            failure = e
                        finally:
                            tg.cancel_scope.cancel()
            finally:
                self._active.discard(run)
            if failure is not None:
                raise failure
            result = task.interface.result(outputs)
            run.record.outputs_json = _json(dict(outputs))
            await anyio.to_thread.run_sync(recorder.write, run.record, [])
            return RunHandle(run.id, task.full_name, run.record.state.value, result, dataclasses.replace(run.record))


def run(task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
    """Run a task on this machine (no server, no account) and wait for it.

    Raises:
        TaskFailedError: the task failed (after its retries); the error names the task, action and attempt.
        AdmissionError: a task can never fit this machine (nothing was started).
    """
    return Runner().run(task, *args, **inputs)


async def run_async(task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
    """As :func:`run`, from inside an event loop."""
    return await Runner().run_async(task, *args, **inputs)
