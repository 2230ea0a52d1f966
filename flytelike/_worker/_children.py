"""Calls a task makes to other tasks while it runs outside the controller: each becomes a child action there.

:class:`Children` is the job's :class:`flytelike._context.Submitter`. A call encodes the child's inputs with the
child's interface, builds the child's own template (so a variant made by ``override()`` is sent as itself), and
sends a ``SubmitChild`` numbered in call order (``child_action_id = f"{action_id}.{n}"``) through a
:class:`ChildChannel`; the ``ChildResult`` is decoded with the child's interface, or raised as a
:class:`~flytelike.errors.TaskFailedError` (:class:`~flytelike.errors.OutOfMemoryError`,
:class:`~flytelike.errors.TaskTimeoutError`) carrying the child's type name, message and traceback text.

An async task gets an awaitable; a sync task (or a thread) blocks until the answer comes on another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from flytelike._context import TaskContext
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._serde import decode_values, encode_values, task_template
from flytelike._task import Task
from flytelike._worker._execute import ExecuteCache, sync_body_running
from flytelike.errors import BackendError, OutOfMemoryError, TaskFailedError, TaskTimeoutError

__all__ = ["ChildChannel", "Children", "Deliver", "child_error"]

Kind = worker_pb2.Error.Kind
Deliver = Callable[[worker_pb2.ChildResult], None]


class ChildChannel(Protocol):
    """How calls reach the controller (a pipe, a gRPC stream)."""

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        """Send ``message``; ``deliver`` gets its result once, on any thread. Calls arrive in call order."""
        ...

    def cancel(self, call: int) -> None:
        """The task stopped waiting for ``call``: withdraw it, unless it was answered already."""
        ...

    def abandon(self, reason: str) -> None:
        """Deliver an error to every call still unanswered, without a word to the controller."""
        ...


@dataclass(frozen=True, slots=True)
class Where:
    """Which attempt a job is, for the task's context (``fl.ctx()``)."""

    run_id: str
    action_id: str
    attempt: int
    task: str
    platform: str


class Children:
    """The submitter of one job whose calls go to the controller."""

    def __init__(
        self, channel: ChildChannel, action_id: str, cache: ExecuteCache | None = None, *, where: Where | None = None
    ) -> None:
        self._channel = channel
        self._action_id = action_id
        self._where = where
        self._templates: dict[int, tuple[Task[..., Any], bytes, str]] = (
            cache.child_templates if cache is not None else {}
        )
        self._lock = threading.Lock()
        self._count = 0
        self._open = True

    def submit(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        loop = _loop()
        if loop is None:
            # A sync task (or a thread) calling an async task cannot await it: block for the result.
            return self.submit_blocking(task, values)
        future: asyncio.Future[Any] = loop.create_future()

        def deliver(result: worker_pb2.ChildResult) -> None:
            # RuntimeError: the loop has closed.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, future, task, result)

        call = self._send(task, values, deliver)

        def withdraw(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                self._channel.cancel(call)

        future.add_done_callback(withdraw)
        return future

    def submit_blocking(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        answered = threading.Event()
        answers: list[worker_pb2.ChildResult] = []

        def deliver(result: worker_pb2.ChildResult) -> None:
            answers.append(result)
            answered.set()

        self._send(task, values, deliver)
        answered.wait()
        return _outcome(task, answers[0])

    def context(self) -> TaskContext:
        where = self._where or Where("", self._action_id, 0, "", "local")
        # The job's env_vars are in this process's environment while it runs.
        return TaskContext(
            where.run_id, where.action_id, where.attempt, where.task, where.platform, MappingProxyType(dict(os.environ))
        )

    def in_event_loop_thread(self) -> bool:
        return _loop() is not None

    def close(self) -> None:
        """The job ended: later calls fail, and threads still waiting for an answer get an error."""
        with self._lock:
            self._open = False
        self._channel.abandon("the task that made this call has returned")

    def _send(self, task: Task[..., Any], values: Mapping[str, Any], deliver: Deliver) -> int:
        inputs = encode_values(values, task.interface.inputs, where=task.full_name)
        template, version = self._template(task)
        with self._lock:
            if not self._open:
                raise BackendError(f"task {task.full_name} was called after the task that called it returned")
            call = self._count
            self._count += 1
            # Sent under the lock: calls leave in the order they were numbered.
            self._channel.submit(
                worker_pb2.SubmitChild(
                    call=call,
                    child_action_id=f"{self._action_id}.{call}",
                    task=f"{task.full_name}@{version}",
                    template=template,
                    inputs=inputs,
                ),
                deliver,
            )
        return call

    def _template(self, task: Task[..., Any]) -> tuple[bytes, str]:
        found = self._templates.get(id(task))
        if found is None or found[0] is not task:
            template = task_template(task, task.resolved(None))
            found = (task, template.SerializeToString(deterministic=True), template.id.version)
            self._templates[id(task)] = found
        return found[1], found[2]

    def _settle(self, future: asyncio.Future[Any], task: Task[..., Any], result: worker_pb2.ChildResult) -> None:
        if future.done() or not self._open:
            return  # the task stopped waiting, or the job is over and nobody awaits this any more
        try:
            future.set_result(_outcome(task, result))
        except Exception as e:
            future.set_exception(e)


def _loop() -> asyncio.AbstractEventLoop | None:
    """The event loop a call should return an awaitable on; None when the call must block."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return None if sync_body_running() else loop


def _outcome(task: Task[..., Any], result: worker_pb2.ChildResult) -> Any:
    if result.WhichOneof("outcome") == "outputs":
        outputs = decode_values(result.outputs, task.interface.outputs, where=f"{task.full_name} outputs")
        return task.interface.result(outputs)
    raise child_error(task.full_name, result.error)


_ERRORS: dict[int, type[TaskFailedError]] = {Kind.OOM: OutOfMemoryError, Kind.TIMEOUT: TaskTimeoutError}


def child_error(task: str, error: worker_pb2.Error) -> TaskFailedError:
    """The error a called task's failure raises in its caller.

    Attributes beyond TaskFailedError's: ``type_name`` (what was raised in the controller), ``traceback_text``.
    """
    cls = _ERRORS.get(error.kind, TaskFailedError)
    raised = cls(
        error.message or error.type_name,
        task=error.task or task,
        action=error.action_id,
        attempt=error.attempt,
        cause_type=error.cause_type or error.type_name,
    )
    raised.type_name = error.type_name  # type: ignore[attr-defined]
    raised.traceback_text = error.traceback  # type: ignore[attr-defined]
    return raised
