"""ChildResults for failures that happened around a call rather than in the called task."""

from __future__ import annotations

from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames

__all__ = ["lost", "system_error"]

Kind = worker_pb2.Error.Kind


def system_error(call: int, error: BaseException) -> worker_pb2.ChildResult:
    """``error``, raised by the machinery serving the call, as the call's SYSTEM-error result."""
    return worker_pb2.ChildResult(call=call, error=_frames.error(Kind.SYSTEM, error))


def lost(call: int, message: str) -> worker_pb2.ChildResult:
    """A call that got no answer, as a SYSTEM-error result saying why (a BackendError in the caller)."""
    return worker_pb2.ChildResult(
        call=call,
        error=worker_pb2.Error(kind=Kind.SYSTEM, type_name="flytelike.errors.BackendError", message=message),
    )
