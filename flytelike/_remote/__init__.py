"""gRPC servers and clients of the controller: the ActionService that tasks running elsewhere call.

A task running outside the controller's process (a pod, a Batch job, started by ``flytelike-entry``) reaches its
controller through the ActionService: it submits child actions and waits for their results, streams its output and
sends heartbeats, presenting the per-run token the controller made when it launched the attempt.

- :class:`ActionServer`: the controller's side (grpc.aio, with the standard health service); one per controller,
  each run registered with the :class:`RunCalls` that serves it.
- :class:`ActionClient`: the task's side, a ``ChildChannel`` for the job's calls, on its own thread and event loop.

grpc is imported here and nowhere else in flytelike, so that ``import flytelike`` does not pay for it.
"""

from __future__ import annotations

from flytelike._remote._calls import RunCalls
from flytelike._remote._client import ActionClient
from flytelike._remote._server import SERVICE_NAME, ActionServer

__all__ = ["SERVICE_NAME", "ActionClient", "ActionServer", "RunCalls"]
