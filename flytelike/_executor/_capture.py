"""Per-action capture of what in-process tasks print.

While a run is active, ``sys.stdout`` and ``sys.stderr`` are wrapped by streams that copy each write to the log of
the action running in the current context (a context variable, so concurrent async tasks and their worker threads
are told apart) and pass it through unchanged.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

__all__ = ["capturing", "sink"]

sink: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("flytelike_log_sink", default=None)


class _Tee:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        logs = sink.get()
        if logs is not None and text:
            logs.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def capturing() -> Iterator[None]:
    """Install the capturing streams for the duration of a run (nested runs share them)."""
    if isinstance(sys.stdout, _Tee):
        yield
        return
    out, err = sys.stdout, sys.stderr
    # The wrappers pass every other attribute (fileno, encoding, isatty, ...) through to the real stream.
    sys.stdout = cast(TextIO, _Tee(out))
    sys.stderr = cast(TextIO, _Tee(err))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
