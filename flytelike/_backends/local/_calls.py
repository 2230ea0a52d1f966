"""The parent's side of the calls a process-isolated task makes to other tasks while it runs.

A task running in a worker that calls a task sends ``SubmitChild`` and waits. The pool hands each call to the job's
``on_call`` as a :class:`ChildCall` (the local backend runs it as a child action of the job's action) and answers
with ``ChildResult``: the child's outputs (LiteralMap bytes) or its error as structured fields. A task that stops
waiting for a call (its asyncio task was cancelled) sends ``CancelChild``, which cancels that call here and gets
no answer.

Many calls of one job may be outstanding at once (``asyncio.gather`` in the worker); each runs in its own task of
the job's task group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from flytelike._backends.local._places import Places
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames
from flytelike.errors import BackendError

__all__ = ["ChildCall", "JobCalls", "OnCall", "Place", "ProtocolError"]

Kind = worker_pb2.Error.Kind
Message = worker_pb2.WorkerMessage


@dataclass(frozen=True, slots=True)
class ChildCall:
    """A call the task made: run ``task`` (``"name@version"``, compiled from ``template``) on ``inputs``.

    Attributes:
        action_id: the child's action id, ``"<job's action id>.<n>"`` for the n-th call of the job (from 0).
        task: ``"name@version"`` of the called task.
        template: its serialized TaskTemplate (a variant made by ``override()`` is sent as itself).
        inputs: its serialized LiteralMap of inputs.
    """

    action_id: str
    task: str
    template: bytes
    inputs: bytes


OnCall = Callable[[ChildCall], Awaitable[bytes]]
"""``on_call(call) -> outputs``: the child's serialized LiteralMap of outputs; raises to fail the call.

Calls of a job are started one at a time, in the order the worker made them: each runs until its first suspension
before the next frame is read, so an ``on_call`` that takes an order-dependent id before its first ``await`` (as
``Run.child`` does) numbers calls in the order the task made them.
"""

Send = Callable[[Message], None]
Receive = Callable[[], Awaitable[Message | None]]
"""The worker's next message; None once no more will come (the worker died or sent garbage)."""


class ProtocolError(BackendError):
    """The worker sent a message out of place."""


class Place:
    """A job's place among the pool's running jobs, given up while the job waits for the tasks it called.

    A task waiting for its children uses no cpu; were it to keep its place, calls nested deeper than the pool is
    wide would deadlock (every place held by a parent waiting for a child that waits for a place). This is the
    pool's counterpart of the executor releasing a parent's admitted resources while its children run.
    """

    def __init__(self, places: Places[Any]) -> None:
        self._places = places
        self._resuming: anyio.Lock | None = None
        self.held = False
        self.waiting = 0

    async def take(self) -> None:
        await self._places.acquire()
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._places.release()

    def call_started(self) -> None:
        self.waiting += 1
        self.give_back()

    def call_ended(self) -> None:
        self.waiting -= 1

    async def resume(self) -> None:
        """Take a place again once no call is outstanding, before the worker gets the answer that wakes it."""
        if self._resuming is None:
            self._resuming = anyio.Lock()
        async with self._resuming:
            if self.held or self.waiting > 0:
                return
            await self._places.acquire()
            if self.waiting > 0:
                # Another call started while this one waited for a place: the job is still only waiting.
                self._places.release()
            else:
                self.held = True


class JobCalls:
    """Serves the calls of one job, in the job's task group.

    Args:
        send: writes one message to the worker.
        on_call: runs a call; ``None`` refuses every call (the job was started without calls).
        place: the job's place in the pool, given up while calls are outstanding.
        on_logs: takes what the job printed as it comes (``Logs`` frames); ``None`` drops it (the rest of the output
            still comes with the ``Done``).
    """

    def __init__(
        self, send: Send, on_call: OnCall | None, place: Place, on_logs: Callable[[bytes], None] | None = None
    ) -> None:
        self._send = send
        self._on_call = on_call
        self._place = place
        self._on_logs = on_logs
        self._scopes: dict[int, anyio.CancelScope] = {}

    async def until_done(self, receive: Receive) -> worker_pb2.Done | None:
        """Serve the job's calls until the job's ``Done`` comes, and return it; None if the worker is lost.

        Each call is started before the next frame is read, and has run up to its first suspension by then. A task
        group for the calls is only made once the first call comes, so a job that calls nothing costs none.
        """
        while True:
            message = await receive()
            if message is None:
                return None
            which = message.WhichOneof("body")
            if which == "done":
                return message.done
            if which == "submit_child" and self._on_call is not None:
                async with anyio.create_task_group() as tg:
                    try:
                        await tg.start(self._serve, message.submit_child)
                        return await self._serve_until_done(receive, tg)
                    finally:
                        # Calls the task made but did not wait for are cancelled.
                        tg.cancel_scope.cancel()
            self._other(message)

    async def _serve_until_done(self, receive: Receive, tg: anyio.abc.TaskGroup) -> worker_pb2.Done | None:
        while True:
            message = await receive()
            if message is None:
                return None
            which = message.WhichOneof("body")
            if which == "done":
                return message.done
            if which == "submit_child":
                await tg.start(self._serve, message.submit_child)
            else:
                self._other(message)

    def _other(self, message: Message) -> None:
        which = message.WhichOneof("body")
        if which == "submit_child":
            self._send(Message(child_result=self._refused(message.submit_child)))
        elif which == "cancel_child":
            # The worker no longer waits for this call; one already answered is gone from the table.
            scope = self._scopes.get(message.cancel_child.call)
            if scope is not None:
                scope.cancel()
        elif which == "logs":
            if self._on_logs is not None:
                self._on_logs(message.logs.data)
        elif which != "heartbeat":
            raise ProtocolError(f"the worker sent {which!r} while running a job")

    @staticmethod
    def _refused(submit: worker_pb2.SubmitChild) -> worker_pb2.ChildResult:
        error = BackendError(f"task {submit.task} was called, but this job takes no calls")
        return worker_pb2.ChildResult(call=submit.call, error=_frames.call_error(error))

    async def _serve(
        self, submit: worker_pb2.SubmitChild, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        assert self._on_call is not None
        call = submit.call
        reply: worker_pb2.ChildResult | None = None
        scope = anyio.CancelScope()
        self._scopes[call] = scope
        self._place.call_started()
        try:
            with scope:
                task_status.started()
                try:
                    child = ChildCall(submit.child_action_id, submit.task, submit.template, submit.inputs)
                    outputs = await self._on_call(child)
                    reply = worker_pb2.ChildResult(call=call, outputs=outputs)
                except Exception as e:
                    reply = worker_pb2.ChildResult(call=call, error=_frames.call_error(e))
        finally:
            del self._scopes[call]
            self._place.call_ended()
        await self._place.resume()
        if reply is not None:  # None: the worker cancelled the call and waits for no answer
            self._send(Message(child_result=reply))
