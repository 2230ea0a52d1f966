"""The one core that runs a task outside the controller: template and input bytes in, output bytes or an error out.

A warm worker runs it for every job it gets over its pipe; the container entrypoint will run it for a pod or a
Batch job. It knows nothing of transports: the caller gives it the template, the inputs and a submitter for the
task's calls, and sends the result wherever it goes.

Failures are structured (:class:`~flytelike._proto.worker.v1.worker_pb2.Error`): ``SETUP`` for anything before the
task's code ran (import, finding the task, a template whose code has changed, inputs that do not decode),
``USER`` for an exception the task raised (or outputs that do not match its interface), ``OOM`` for a MemoryError.
Tracebacks start at the task's own frames.

Example:
    >>> import asyncio
    >>> from flytelike._proto.core.v1 import tasks_pb2
    >>> result = asyncio.run(execute(ExecuteInput(template=tasks_pb2.TaskTemplate(), inputs=b"")))
    >>> worker_pb2.Error.Kind.Name(result.error.kind)
    'SETUP'
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import os
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

from flytelike import _context
from flytelike._loader import find_task, load_file, load_module
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._serde import decode_values, encode_values
from flytelike._serde._template import _source_digest
from flytelike._task import Task
from flytelike._worker import _frames
from flytelike.errors import LoadError

__all__ = ["ExecuteCache", "ExecuteInput", "ExecuteResult", "execute", "sync_body_running"]

Kind = worker_pb2.Error.Kind
_PLUMBING = (os.path.dirname(__file__), os.path.dirname(asyncio.__file__))

# The asyncio task whose thread a sync task's body is blocking right now (see sync_body_running).
_sync_body: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "flytelike_sync_body", default=None
)


@dataclass(slots=True)
class ExecuteCache:
    """What one process keeps between executions: imported modules, tasks found, templates checked.

    Modules stay imported (module-level state survives from one job to the next, as in a long-lived process).
    """

    modules: dict[tuple[str, str], ModuleType] = field(default_factory=dict)
    tasks: dict[tuple[int, str], Task[..., Any]] = field(default_factory=dict)
    versions: dict[tuple[int, str], bool] = field(default_factory=dict)
    child_templates: dict[int, tuple[Task[..., Any], bytes, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecuteInput:
    """One execution.

    Attributes:
        template: the task's template; ``id.name`` finds the task, ``id.version`` must match its code.
        inputs: the serialized LiteralMap of the inputs.
        code_file: the file defining the task's module; None: import ``template.config["flytelike.module"]``.
        submitter: where the task's calls to other tasks go; None: they are plain function calls.
        cache: modules and tasks kept from earlier executions in this process.
    """

    template: tasks_pb2.TaskTemplate
    inputs: bytes
    code_file: str | None = None
    submitter: _context.Submitter | None = None
    cache: ExecuteCache = field(default_factory=ExecuteCache)


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    """Exactly one of ``outputs`` (a serialized LiteralMap) and ``error`` is set."""

    outputs: bytes | None = None
    error: worker_pb2.Error | None = None


def sync_body_running() -> bool:
    """True while a sync task's body runs on (and blocks) the thread of the current event loop.

    Its calls must then block for their results, which arrive on another thread, instead of returning awaitables.
    """
    body = _sync_body.get()
    if body is None:
        return False
    try:
        return asyncio.current_task() is body
    except RuntimeError:
        return False


async def execute(request: ExecuteInput) -> ExecuteResult:
    """Run the task of ``request.template`` on ``request.inputs``; never raises for a failure of the task."""
    try:
        task = _task(request)
        values = decode_values(request.inputs, task.interface.inputs, where=task.full_name)
    except Exception as e:
        return ExecuteResult(error=_failure(Kind.SETUP, e))
    token = _context.use(request.submitter)
    try:
        if task.is_async:
            value = await task.fn(**values)
        else:
            body = _sync_body.set(asyncio.current_task())
            try:
                value = task.fn(**values)
            finally:
                _sync_body.reset(body)
            if inspect.isawaitable(value):
                value = await value
        outputs = task.interface.check_outputs(value, task=task.full_name)
        data = encode_values(outputs, task.interface.outputs, where=f"{task.full_name} outputs")
    except MemoryError as e:
        return ExecuteResult(error=_failure(Kind.OOM, e))
    except asyncio.CancelledError as e:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this execution was cancelled, not failed
        return ExecuteResult(error=_failure(Kind.USER, e))
    except BaseException as e:  # SystemExit too: the task's, not this process's
        return ExecuteResult(error=_failure(Kind.USER, e))
    finally:
        _context.reset(token)
    return ExecuteResult(outputs=data)


def _task(request: ExecuteInput) -> Task[..., Any]:
    template, cache = request.template, request.cache
    if not template.id.name:
        raise LoadError("the template names no task (template.id.name is empty)")
    module = _module(request)
    key = (id(module), template.id.name)
    task = cache.tasks.get(key)
    if task is None:
        task = cache.tasks[key] = find_task(module, template.id.name, source=request.code_file)
    checked = (id(task), template.id.version)
    if checked not in cache.versions:
        cache.versions[checked] = _same_code(template, task)
    if not cache.versions[checked]:
        raise LoadError(
            f"task {template.id.name} version {template.id.version}: the code imported here "
            f"({request.code_file or _module_name(template)}) is not the code this version was made from "
            "(the file changed after the run started)"
        )
    return task


def _module(request: ExecuteInput) -> ModuleType:
    key = ("file", request.code_file) if request.code_file else ("module", _module_name(request.template))
    module = request.cache.modules.get(key)
    if module is None:
        module = load_file(key[1]) if key[0] == "file" else load_module(key[1])
        request.cache.modules[key] = module
    return module


def _module_name(template: tasks_pb2.TaskTemplate) -> str:
    name = template.config.get("flytelike.module", "")
    if not name:
        raise LoadError(f"task {template.id.name}: no code file, and the template names no module")
    return name


def _same_code(template: tasks_pb2.TaskTemplate, task: Task[..., Any]) -> bool:
    """The template's version is the one its content gives with the source of the module imported here.

    A version hashes the template (without its version) and the source of the task's module (see
    :func:`flytelike._serde.task_template`), so this holds for a template built with a run's ``--with`` platform
    or by ``override()``, and fails when the file was edited since the template was made.
    """
    unversioned = tasks_pb2.TaskTemplate()
    unversioned.CopyFrom(template)
    unversioned.id.version = ""
    digest = hashlib.sha256(unversioned.SerializeToString(deterministic=True))
    digest.update(_source_digest(task.fn.__module__).encode())
    return digest.hexdigest()[:20] == template.id.version


def _failure(kind: Kind.ValueType, error: BaseException) -> worker_pb2.Error:
    # The leading frames are this package's and asyncio's calls into the task; users only need theirs.
    tb: TracebackType | None = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_PLUMBING):
        tb = tb.tb_next
    return _frames.error(kind, error, tb)
