"""What the controller does with the requests of the attempts it launched elsewhere: one handler per run."""

from __future__ import annotations

from typing import Protocol

from flytelike._proto.worker.v1 import worker_pb2

__all__ = ["RunCalls"]


class RunCalls(Protocol):
    """The controller's side of one run's ActionService requests, registered with
    :meth:`flytelike._remote.ActionServer.register`.

    The server has checked the token and the run id before it calls any of these; ``action_id`` and ``attempt``
    name the calling attempt as the request gave them.
    """

    async def submit(self, action_id: str, attempt: int, child: worker_pb2.SubmitChild) -> worker_pb2.ChildResult:
        """Run ``child`` as a child action of ``action_id`` and return its outcome once it ended.

        Cancelled when the caller cancels its call (the task stopped waiting for it). An exception raised here
        reaches the caller as a ChildResult with a SYSTEM error, so a task failure should be returned, not raised.
        """
        ...

    def logs(self, action_id: str, attempt: int, data: bytes) -> None:
        """Output of the attempt, in the order written, each byte once (a resent piece is passed on only once)."""
        ...

    def heartbeat(self, action_id: str, attempt: int) -> None:
        """The attempt is still alive."""
        ...
