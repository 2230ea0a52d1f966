"""Small helpers for one gRPC call on grpc.aio, shared by the task's side of the ActionService."""

from __future__ import annotations

from typing import Any, TypeVar

import anyio
import grpc
import grpc.aio

__all__ = ["response", "status"]

R = TypeVar("R")
_Call = grpc.aio.UnaryUnaryCall[Any, R] | grpc.aio.StreamUnaryCall[Any, R]


async def response(call: _Call[R]) -> R:
    """The response of an RPC; cancelling the caller cancels the RPC.

    Awaiting the call itself would turn a cancellation into grpc's own CancelledError, which an anyio cancel scope
    does not take for its own: it would let it through and end the client's whole task group.
    """
    ended = anyio.Event()
    call.add_done_callback(lambda _: ended.set())
    try:
        await ended.wait()
    finally:
        call.cancel()  # does nothing once the call has ended
    return await call


def status(error: grpc.aio.AioRpcError) -> str:
    """``CODE: details`` of a failed call, for messages."""
    return f"{error.code().name}: {error.details() or 'no details'}"
