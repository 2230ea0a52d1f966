"""The composition root: a :class:`Runtime` holds the stores, the backends and the executor, and starts runs.

``fl.run``, ``fl.run_async``, ``fl.Runner``, the CLI and the tests all build runs through it; several runs may share
one runtime (they share its backends, so local admission sees them all). Nothing process-wide is changed by a run:
no environment variables are set and standard output is not swapped (in-process output is captured through a
context-local sink behind a pass-through stream installed once).

Example:
    >>> import anyio
    >>> import flytelike as fl
    >>> from flytelike._runtime import Runtime
    >>> env = fl.TaskEnvironment(name="doc-runtime")
    >>> @env.task
    ... async def double(x: int) -> int:
    ...     return 2 * x
    >>> async def main() -> int:
    ...     async with Runtime() as runtime:
    ...         handle = await runtime.start(double, 21)
    ...         return await handle.result()
    >>> anyio.run(main)
    42
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from google.protobuf.message import DecodeError

from flytelike._backends import BackendInput, load_backend
from flytelike._backends._remote import RemoteServices
from flytelike._capture import echo
from flytelike._config import ResourcePolicy, Settings, load_settings
from flytelike._executor import (
    Backend,
    ExecTask,
    Executor,
    ExecutorInput,
    Run,
    RunRecord,
    RunState,
    Values,
)
from flytelike._invoke import Invoker, TaskIndex
from flytelike._platform_spec import parse_platform_spec
from flytelike._platforms import Platform
from flytelike._proto.core.v1 import literals_pb2, tasks_pb2
from flytelike._reachable import reachable_tasks
from flytelike._run_context import RunContext
from flytelike._run_handle import RunHandle
from flytelike._storage import CacheStore, KeyLock, LogSpool, RecordStore, has_blobs, pin_local
from flytelike._task import Task
from flytelike.errors import BackendError, FlytelikeError, SpecError

if TYPE_CHECKING:
    from flytelike._executor import Resumed
    from flytelike._remote import ActionServer

__all__ = ["RunHandle", "Runtime", "TemplateRunInput", "reachable_tasks"]


def _run_id(name: str | None = None) -> str:
    # os.urandom, as secrets.token_hex uses, without importing secrets (and random, hmac) at start-up.
    if name is not None:
        return f"{name}-{os.urandom(3).hex()}"
    return time.strftime("r%Y%m%d-%H%M%S-", time.localtime()) + os.urandom(3).hex()


def _json(values: Mapping[str, Any]) -> str:
    return json.dumps(dict(values), default=_plain, sort_keys=True)[:10_000]


def _plain(value: Any) -> Any:
    """A value JSON cannot hold, as people read it (the run's literal bytes are what a rerun decodes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return repr(value)


def _source_file(task: Task[..., Any]) -> str:
    """The absolute path of the file that defines ``task`` (what a rerun imports again), or ``""``."""
    module = sys.modules.get(getattr(task.fn, "__module__", ""))
    path = getattr(module, "__file__", None)
    return str(Path(path).resolve()) if path else ""


class _LazyCache:
    """The output cache, opened on first use: most runs cache nothing and should not pay for the file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._store: CacheStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> CacheStore:
        with self._lock:
            if self._store is None:
                self._store = CacheStore(self._path)
            return self._store

    def get(self, key: str) -> tuple[bytes, float] | None:
        return self._open().get(key)

    def put(self, key: str, data: bytes) -> None:
        # A cached file or directory is a copy kept by its digest: the task's own path may be a temporary file
        # that is gone by the time the entry is used.
        if has_blobs(data):
            data = pin_local(data, self._path.parent / "cache-data")
        self._open().put(key, data)

    def try_lock(self, key: str) -> KeyLock | None:
        return KeyLock.acquire(self._path.parent / "cache-locks" / f"{key}.lock")

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


@dataclass(frozen=True, slots=True)
class TemplateRunInput:
    """A run whose code is not in this process (what ``flytelike serve`` starts): a template, literal inputs and
    the code bundle every task of the run comes from.

    Attributes:
        template: the root task's serialized TaskTemplate (with the run's platform already applied, or none).
        inputs: its inputs, a serialized LiteralMap.
        bundle: the digest of the bundle in the store (``sha256:<hex>`` or ``<hex>``).
        module: the root task's module inside the bundle (``pkg.tasks``).
        platform: the platform of tasks that have none (``kubernetes``, ``batch``); None: the runtime's.
        name: the run's name (its id starts with it).
        labels: the run's labels.
        run_id: the run's id, when the caller chose it (a server's own id for the run); ``name`` is then unused.
        resume: the run was started before, by a controller that stopped: where each of its actions stood by the
            records (the run goes on from there, and attempts that may exist are found, not started again).
        first_seq: with ``resume``: the seq of the last recorded event.
    """

    template: bytes
    inputs: bytes
    bundle: str
    module: str
    platform: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None
    resume: Mapping[str, Resumed] | None = None
    first_seq: int = 0


class Runtime:
    """Stores, backends and the executor; an async context manager that starts runs.

    Args:
        settings: resolved settings; default: read from the configuration files and environment.
        platform: a platform (``"kubernetes"``, ``"batch:queue=q"`` or a platform object) for every task that has
            none; ``None`` runs them on this machine.
        local_resources: how local runs treat Resources (``check``, ``strict`` or ``ignore``); default from the
            configuration (``[local] resources``).
        backend_options: per-backend choices overriding the settings, e.g. ``{"local": {"capacity": ...}}``.
        backends: backend factories by platform name, instead of the built-in ones (e.g. ``{"local":
            SubprocessBackend.from_input}`` from :mod:`flytelike.testing` runs every local task in a new process).
        record_events: write every action transition to the records too, not only each action's latest state.
        context: run-scoped defaults (run name, labels, env vars, cache overwrite) for the runs it starts.
        controller: the ActionService tasks elsewhere call back on, when its owner runs it (``flytelike serve``
            serves it on its own port); default: one started on ``[controller] bind`` when first needed.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        platform: Platform | str | None = None,
        local_resources: ResourcePolicy | None = None,
        backend_options: Mapping[str, Mapping[str, Any]] | None = None,
        backends: Mapping[str, Callable[[BackendInput], Backend]] | None = None,
        record_events: bool = False,
        context: RunContext | None = None,
        controller: ActionServer | None = None,
    ) -> None:
        self._record_events = record_events
        self.context = context
        self.settings = settings or load_settings()
        self.platform = parse_platform_spec(platform) if isinstance(platform, str) else platform
        if self.platform is not None and not isinstance(self.platform, Platform):
            raise SpecError("platform", platform, "not a platform", accepted="'kubernetes', 'batch:queue=q'")
        options = {name: dict(values) for name, values in (backend_options or {}).items()}
        if local_resources is not None:
            options.setdefault("local", {})["policy"] = local_resources
        self._options = options
        self.index = TaskIndex(self.platform, context)
        self._invoker = Invoker(self.index)
        self._factories = dict(backends or {})
        self._remote = RemoteServices(self.settings, self._invoker, controller=controller)
        self._backends: dict[str, Backend] = {}
        self._entering = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._background: anyio.abc.TaskGroup | None = None
        self._executor: Executor | None = None
        self._records: RecordStore | None = None
        self._runs: set[Run] = set()

    @property
    def platform_name(self) -> str:
        return self.platform.name if self.platform is not None else "local"

    async def __aenter__(self) -> Runtime:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            home = self.settings.home
            recorder = await anyio.to_thread.run_sync(lambda: _open_records(self.settings.db_path))
            stack.callback(recorder.close)
            self._records = recorder
            cache = _LazyCache(home / "cache.sqlite3")
            stack.callback(cache.close)
            self._executor = Executor(
                ExecutorInput(backends=self._backend, recorder=recorder, cache=cache, record_events=self._record_events)
            )
            # What backends keep running beside the runs (a shared watch): they cancel theirs when they are left,
            # and whatever is left then is cancelled before this group ends.
            self._background = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._background.cancel_scope.cancel)
            # Backends are left after the runs end, and the remote services after the backends (the exit stack
            # unwinds in reverse).
            stack.push_async_callback(self._remote.aclose)
            stack.push_async_callback(self._close_backends)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        if exc is not None:
            # The body failed: its runs are cancelled and awaited, and its exception goes on as it was (passing it
            # into the task group would wrap it in an exception group).
            self.cancel()
        await stack.__aexit__(None, None, None)
        return None

    @property
    def threads_running(self) -> int:
        """Sync tasks of this runtime's runs still running in threads (see :class:`~flytelike._invoke.Invoker`)."""
        return self._invoker.threads_running

    def cancel(self) -> None:
        """Cancel every run this runtime is executing."""
        for run in list(self._runs):
            run.cancel_scope.cancel()

    def leave(self) -> None:
        """Stop executing every run, leaving what their attempts started elsewhere running (pods, jobs) for a
        controller that takes the runs over from their records; backends that cannot leave work end it."""
        for backend in self._backends.values():
            detach = getattr(backend, "detach", None)
            if detach is not None:
                detach()
        self.cancel()

    # --- backends -----------------------------------------------------------------------------------------------

    def _backend(self, name: str) -> Backend:
        backend = self._backends.get(name)
        if backend is None:
            raise BackendError(
                f"platform {name!r} was not prepared for this run; tasks found from the root task's code: "
                "call the task from the root's module, or run it with --with"
            )
        return backend

    async def backend(self, name: str) -> Backend:
        """The backend for platform ``name``, loaded and entered on first use."""
        backend = self._backends.get(name)
        if backend is not None:
            return backend
        async with self._entering:
            backend = self._backends.get(name)
            if backend is None:
                factory = self._factories.get(name) or load_backend(name)
                made = factory(
                    BackendInput(
                        self.settings, self._invoker, self._options.get(name, {}), self._remote, self._background
                    )
                )
                backend = await made.__aenter__()
                self._backends[name] = backend
        return backend

    async def _close_backends(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        with anyio.CancelScope(shield=True):
            for backend in reversed(backends):
                await backend.__aexit__(None, None, None)

    # --- runs ---------------------------------------------------------------------------------------------------

    async def start(self, task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
        """Start ``task`` with its inputs and return its handle at once.

        Raises (before anything starts):
            SpecError / ValueConversionError: ``task`` is not a task, or the inputs do not match it.
            AdmissionError: a task of the run can never fit where it would run.
            BackendError: a task's platform has no backend here.
        """
        if self._tg is None or self._executor is None:
            raise RuntimeError("Runtime.start() called outside `async with Runtime(...)`")
        if not isinstance(task, Task):
            raise SpecError("run", task, "not a task", accepted="a function decorated with @env.task")
        values = task.interface.bind(args, inputs, task=task.full_name)
        root = self.index.compiled(task)
        platform = self.platform_name
        tasks = [self.index.exec_task(t) for t in reachable_tasks(task)]
        for name in sorted({t.platform or platform for t in tasks}):
            try:
                await self.backend(name)
            except BackendError as e:
                who = [t.name for t in tasks if (t.platform or platform) == name]
                raise BackendError(
                    f"task {who[0]} runs on platform {name!r}, but {e}; run it locally without --with, or pin "
                    "it with platform=fl.Local()"
                ) from None
        self._executor.check(tasks, platform)
        context = self.context or RunContext()
        recovery = None
        if context.recover and context.rerun_of and self._records is not None:
            recovery = await anyio.to_thread.run_sync(self._records.recovery, context.rerun_of)
        record = RunRecord(
            _run_id(context.name),
            task.full_name,
            platform=platform,
            inputs_json=_json(values),
            pid=os.getpid(),
            host=socket.gethostname(),
            labels_json=_json(context.labels) if context.labels else "{}",
            inputs=root.encode_inputs(values),
            file=_source_file(task),
            rerun_of=context.rerun_of,
        )
        run = self._executor.new_run(record, record_outputs=context.record_outputs, recovery=recovery)
        run.logs = LogSpool(self.settings.home / "logs", run.id, run.actions, echo=echo)
        handle = RunHandle(run, task.full_name)
        self._runs.add(run)
        # The bytes recorded for a rerun are the root's literal inputs too: they are not encoded twice.
        root_inputs = Values(values, data=record.inputs, encode=root.encode_inputs)
        self._tg.start_soon(self._execute, handle, root.exec, root_inputs, root.result)
        return handle

    async def start_template(self, spec: TemplateRunInput) -> RunHandle:
        """Start a run from a template and literal inputs; its handle's ``result()`` is the output LiteralMap bytes.

        Every task of such a run runs elsewhere (its code is not here): tasks without a platform go to
        ``spec.platform``, and the tasks it calls are taken from the templates their callers send.

        Raises (before anything starts):
            SpecError: the template or the inputs cannot be read, or a task would have to run in this process.
            BackendError: the platform has no backend here, or the bundle is not in the store.
        """
        if self._tg is None or self._executor is None:
            raise RuntimeError("Runtime.start_template() called outside `async with Runtime(...)`")
        try:
            template = tasks_pb2.TaskTemplate.FromString(spec.template)
            literals_pb2.LiteralMap.FromString(spec.inputs)
        except DecodeError as e:
            raise SpecError("run", "template/inputs", f"not a serialized TaskTemplate and LiteralMap ({e})") from None
        task = ExecTask.from_template(template)
        platform = task.platform or spec.platform or self.platform_name
        if platform == "local":
            raise SpecError(
                "run",
                task.name,
                "runs on platform 'local', but its code is not in this process",
                accepted="a platform that runs it elsewhere: kubernetes, batch",
            )
        self._invoker.add_template_task(task)
        await self.backend(platform)
        self._executor.check([task], platform)
        record = RunRecord(
            spec.run_id or _run_id(spec.name),
            task.name,
            platform=platform,
            pid=os.getpid(),
            host=socket.gethostname(),
            labels_json=_json(spec.labels) if spec.labels else "{}",
            inputs=spec.inputs,
        )
        await self._remote.run_bundle(record.id, spec.bundle.removeprefix("sha256:"), spec.module)
        # A server's runs: one action may be aborted on its own (AbortAction).
        run = self._executor.new_run(record, resume=spec.resume, first_seq=spec.first_seq, abortable=True)
        if spec.resume is not None:
            # Its tasks started before may call back at once, before their attempts are found again.
            await self._remote.controller_address()
            self._remote.expect_run(run)
        # Its tasks' output is kept for `flytelike logs`, not echoed: no one here printed it.
        run.logs = LogSpool(self.settings.home / "logs", run.id, run.actions)
        handle = RunHandle(run, task.name)
        self._runs.add(run)
        self._tg.start_soon(self._execute, handle, task, Values(data=spec.inputs), None)
        return handle

    async def _execute(self, handle: RunHandle, task: Any, inputs: Values, result: Any) -> None:
        assert self._executor is not None
        run = handle.run
        try:
            try:
                outputs = await self._executor.execute(run, task, inputs)
            finally:
                # Before the handle says the run ended: its output is on disk once fl.run returns.
                if isinstance(run.logs, LogSpool):
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(run.logs.close)
            if result is None:  # a run from a template: its outputs stay literal bytes
                value = outputs.data()
            else:
                value = result(outputs)
                run.record.outputs_json = _json(self.index.of(task).outputs(outputs))
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._executor.recorder.write, run.record, [])
        except FlytelikeError as e:
            handle._finish(None, e)
        except BaseException as e:
            if not isinstance(e, Exception):
                handle._finish(None, FlytelikeError(f"run {run.id} ended by {type(e).__name__}"))
                raise
            handle._finish(None, e)
        else:
            handle._finish(value, None)
        finally:
            self._runs.discard(run)
            self._remote.forget_run(run.id)
            if run.record.state is RunState.RUNNING:  # ended without the executor's say (interpreter exit)
                run.finish(RunState.ABORTED, "cancelled")


def _open_records(path: Path) -> RecordStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    return RecordStore(path)
