"""The parent's side of the calls a process-isolated task makes to other tasks while it runs.

A task running in a worker that calls a task sends ``{"kind": "call", "call": n, "task": "env.task", "inputs":
<pickled values>}`` and waits. The pool hands each call to the job's ``on_call`` (the local backend runs it as a child
action of the job's action) and writes back ``{"kind": "result", "call": n, "outputs": <pickled named outputs>}``
or ``{"kind": "call_error", "call": n, "exception": <pickled exception or None>, "type_name": ..., "message": ...,
"traceback": ...}``. A task that stops waiting for a call (its asyncio task was cancelled) sends ``{"kind":
"cancel", "call": n}``, which cancels that call here and gets no reply.

Many calls of one job may be outstanding at once (``asyncio.gather`` in the worker); each runs in its own task of
the job's task group, and replies are written whole under the worker's send lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.abc

from flytelike._backends.local._frames import error_fields
from flytelike.errors import BackendError

__all__ = ["JobCalls", "OnCall", "Place"]

OnCall = Callable[[str, bytes], Awaitable[bytes]]
"""``on_call(task_name, pickled_values) -> pickled_named_outputs``; raises to fail the call.

Calls of a job are started one at a time, in the order the worker made them: each runs until its first suspension
before the next call frame is read, so an ``on_call`` that takes an order-dependent id before its first ``await``
(as ``Run.child`` does) numbers calls in the order the task made them.
"""

Send = Callable[[Mapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
_LOST = (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError)


class Place:
    """A job's place among the pool's running jobs, given up while the job waits for the tasks it called.

    A task waiting for its children uses no cpu; were it to keep its place, calls nested deeper than the pool is
    wide would deadlock (every place held by a parent waiting for a child that waits for a place). This is the
    pool's counterpart of the executor releasing a parent's admitted resources while its children run.
    """

    def __init__(self, places: anyio.Semaphore) -> None:
        self._places = places
        self._resuming = anyio.Lock()
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
        """Take a place again once no call is outstanding, before the worker gets the reply that wakes it."""
        async with self._resuming:
            if self.held or self._parked():
                return
            await self._places.acquire()
            if self._parked():
                # Another call started while this one waited for a place: the job is still only waiting.
                self._places.release()
            else:
                self.held = True

    def _parked(self) -> bool:
        return self.waiting > 0


class JobCalls:
    """Serves the calls of one job, in the job's task group.

    Args:
        send: writes one frame to the worker (whole, never interleaved with another).
        on_call: runs a call; ``None`` refuses every call (the job was started without calls).
        place: the job's place in the pool, given up while calls are outstanding.
    """

    def __init__(self, send: Send, on_call: OnCall | None, place: Place) -> None:
        self._send = send
        self._on_call = on_call
        self._place = place
        self._scopes: dict[int, anyio.CancelScope] = {}

    async def until_reply(self, receive: Receive, tg: anyio.abc.TaskGroup) -> dict[str, Any]:
        """Serve the job's calls in ``tg`` until the job's own reply comes, and return that reply.

        Each call is started before the next frame is read, and has run up to its first suspension by then.
        """
        while True:
            message = await receive()
            kind = message.get("kind")
            if kind == "call":
                await tg.start(self._serve, message)
            elif kind == "cancel":
                # The worker no longer waits for this call; one already answered is gone from the table.
                scope = self._scopes.get(message["call"])
                if scope is not None:
                    scope.cancel()
            else:
                return message

    async def _serve(
        self, message: Mapping[str, Any], *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        call: int = message["call"]
        reply: dict[str, Any] | None = None
        scope = anyio.CancelScope()
        self._scopes[call] = scope
        self._place.call_started()
        try:
            with scope:
                task_status.started()
                try:
                    if self._on_call is None:
                        raise BackendError(f"task {message['task']} was called, but this job takes no calls")
                    outputs = await self._on_call(message["task"], message["inputs"])
                    reply = {"kind": "result", "call": call, "outputs": outputs}
                except Exception as e:
                    reply = _call_error(call, e)
        finally:
            del self._scopes[call]
            self._place.call_ended()
        await self._place.resume()
        if reply is not None:  # None: the worker cancelled the call and waits for no reply
            # A worker that died cannot take the reply; the job's reply reader reports how it died.
            with contextlib.suppress(*_LOST):
                await self._send(reply)


def _call_error(call: int, error: Exception) -> dict[str, Any]:
    # Without a pickled exception (or one the worker cannot import), the worker raises a RuntimeError with the text.
    return {"kind": "call_error", "call": call, **error_fields(error)}
