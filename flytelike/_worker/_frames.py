"""Frames of the worker protocol on a pipe, shared by both ends.

A frame is an 8-byte big-endian length followed by one serialized
:class:`~flytelike._proto.worker.v1.worker_pb2.WorkerMessage`. Anything else (a length past :data:`MAX_FRAME`,
bytes that are not a message, a message with no body, a stream that ends inside a frame) is a
:class:`FrameError`, never a hang. This module imports only the standard library, the generated messages and the
error classes: the controller's backends import it, and it must not bring the SDK with it.

Example:
    >>> from flytelike._proto.worker.v1 import worker_pb2
    >>> data = encode(worker_pb2.WorkerMessage(ready=worker_pb2.Ready(pid=7)))
    >>> decoder = Decoder()
    >>> [m.ready.pid for m in decoder.feed(data[:5]) + decoder.feed(data[5:])]
    [7]
"""

from __future__ import annotations

import os
import struct
import traceback
from types import TracebackType

from google.protobuf.message import DecodeError

from flytelike._proto.worker.v1 import worker_pb2
from flytelike.errors import OutOfMemoryError, TaskFailedError, TaskTimeoutError

__all__ = [
    "HEADER",
    "INLINE_BYTES",
    "MAX_FRAME",
    "Decoder",
    "FrameError",
    "call_error",
    "decode",
    "encode",
    "error",
    "read",
    "type_name",
    "write",
]

HEADER = struct.Struct(">Q")
MAX_FRAME = 2**31 - 1
"""The largest frame body: protobuf's own limit for one serialized message."""

INLINE_BYTES = 1 << 20
"""Literal maps up to this size travel inside a message to or from a task elsewhere; larger ones as a store object
(gRPC's own limit on a message is 4 MiB)."""

Message = worker_pb2.WorkerMessage
Kind = worker_pb2.Error.Kind


class FrameError(ValueError):
    """Bytes on the pipe that are not a frame of the worker protocol."""


def encode(message: Message) -> bytes:
    body = message.SerializeToString()
    return HEADER.pack(len(body)) + body


def decode(body: bytes | bytearray | memoryview) -> Message:
    """The message of one frame's body."""
    try:
        message = Message.FromString(bytes(body))
    except (DecodeError, RecursionError, ValueError) as e:
        raise FrameError(f"a frame of {len(body)} bytes is not a worker message ({type(e).__name__}: {e})") from None
    if message.WhichOneof("body") is None:
        raise FrameError(f"a frame of {len(body)} bytes holds no known worker message")
    return message


def _size(header: bytes | bytearray | memoryview) -> int:
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError(f"a frame announces {size} bytes, more than the {MAX_FRAME} a message can have")
    return int(size)


class Decoder:
    """Splits a byte stream into messages, as the bytes arrive in chunks of any size."""

    __slots__ = ("_buffer", "_need")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need = -1  # the body size of the frame being read, once its header is complete

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """The messages completed by ``data`` (possibly none); raises FrameError for a malformed frame."""
        buffer = self._buffer
        buffer += data
        out: list[Message] = []
        start = 0
        end = len(buffer)
        while True:
            if self._need < 0:
                if end - start < HEADER.size:
                    break
                self._need = _size(buffer[start : start + HEADER.size])
                start += HEADER.size
            if end - start < self._need:
                break
            out.append(decode(buffer[start : start + self._need]))
            start += self._need
            self._need = -1
        if start:
            del buffer[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer) + (HEADER.size if self._need >= 0 else 0)

    def end(self) -> None:
        """The stream ended: raise FrameError if it ended inside a frame."""
        if self.pending:
            raise FrameError(f"the stream ended inside a frame ({self.pending} bytes of it received)")


def read(fd: int) -> Message | None:
    """The next message from a blocking descriptor; None when the stream ends between frames."""
    header = _read_exactly(fd, HEADER.size, first=True)
    if header is None:
        return None
    body = _read_exactly(fd, _size(header))
    assert body is not None
    return decode(body)


def _read_exactly(fd: int, size: int, *, first: bool = False) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            if first and remaining == size:
                return None
            raise FrameError(f"the stream ended inside a frame ({size - remaining} of {size} bytes received)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def write(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a blocking descriptor."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def type_name(cls: type[BaseException]) -> str:
    """``ValueError`` for builtins, ``module.Qualified`` otherwise."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def error(kind: Kind.ValueType, exc: BaseException, tb: TracebackType | None = None) -> worker_pb2.Error:
    """The structured form of ``exc``; its traceback is formatted from ``tb`` (default: the error's own)."""
    cls = type(exc)
    return worker_pb2.Error(
        kind=kind,
        type_name=type_name(cls),
        message=str(exc),
        traceback="".join(traceback.format_exception(cls, exc, tb or exc.__traceback__)),
    )


def call_error(failure: Exception) -> worker_pb2.Error:
    """A call's failure as structured fields: the failed task, action and attempt when it is a task failure."""
    if isinstance(failure, OutOfMemoryError):
        kind = Kind.OOM
    elif isinstance(failure, TaskTimeoutError):
        kind = Kind.TIMEOUT
    elif isinstance(failure, TaskFailedError):
        kind = Kind.USER
    else:
        kind = Kind.SYSTEM
    out = error(kind, failure)
    if isinstance(failure, TaskFailedError):
        out.task, out.action_id, out.attempt, out.cause_type = (
            failure.task,
            failure.action,
            failure.attempt,
            failure.cause_type,
        )
    return out
