"""The frames that pass between the worker pool and its workers, shared by both ends.

A frame is an 8-byte big-endian length followed by a pickled dict of plain values (str, int, bytes, ...), so that
either end reads it without importing the other's modules; values of user types travel as nested pickles, which are
unpickled where their modules can be imported. Errors travel as their type name, message and traceback text, plus
the pickled exception when it pickles. This module imports only the standard library: every worker imports it at
start-up.
"""

from __future__ import annotations

import os
import pickle
import struct
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

__all__ = ["HEADER", "encode", "error_fields", "read", "unpickle_error", "write"]

HEADER = struct.Struct(">Q")


def encode(message: Mapping[str, Any]) -> bytes:
    body = pickle.dumps(dict(message), protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def read(fd: int) -> dict[str, Any] | None:
    """The next frame from a blocking descriptor; None at end of input."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(header)[0])
    if body is None:
        return None
    message: dict[str, Any] = pickle.loads(body)
    return message


def write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def error_fields(error: BaseException, tb: TracebackType | None = None) -> dict[str, Any]:
    """``type_name``, ``message``, ``traceback`` (from ``tb``, default the error's own) and ``exception``."""
    cls = type(error)
    try:
        pickled: bytes | None = pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pickled = None  # the receiver then has the type name, message and traceback text alone
    return {
        "type_name": f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(cls, error, tb or error.__traceback__)),
        "exception": pickled,
    }


def unpickle_error(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        error = pickle.loads(data)
    except Exception:
        # The class may live in a module only the other end can import.
        return None
    return error if isinstance(error, BaseException) else None
