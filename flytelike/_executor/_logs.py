"""What tasks print, per attempt: the one call every backend makes to hand output over (``LogSink.append``).

A run has one sink (``Run.logs``). In-process capture, the warm-worker backend and backends running tasks
elsewhere all append to it by action id and attempt; the sink keeps each action's last ``TAIL_CHARS`` characters
in its record (``ActionRecord.logs``, written to the run records) and, for a sink that spools to files, the whole
output on disk. Nothing is ever held whole in memory: a task printing gigabytes costs the tail.

:class:`TailOnly` keeps the tails alone; it is what a run uses when nothing gave it a spool (a run built by the
executor directly, in tests).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Literal, Protocol

from flytelike._executor._model import ActionRecord

__all__ = ["STREAMS", "TAIL_CHARS", "LogSink", "Stream", "TailOnly", "keep_tail"]

TAIL_CHARS = 64 * 1024
"""Characters of an action's output kept in its record (the rest is in the log file, if there is one)."""

Stream = Literal["out", "err", "all"]
"""Where the output went: stdout, stderr, or both as one stream (a worker process writes both to one file, so what
it printed comes back interleaved, as written)."""

STREAMS: tuple[Stream, ...] = ("out", "err", "all")


class LogSink(Protocol):
    """Output of a run's attempts.

    Called from any thread (a sync task prints from its worker thread), so implementations lock; appending must be
    cheap, since in-process tasks call it on every write to stdout or stderr.
    """

    def append(self, action_id: str, attempt: int, data: str | bytes, stream: Stream = "out") -> None:
        """Add ``data`` to what attempt ``attempt`` of action ``action_id`` printed (bytes are UTF-8)."""
        ...

    def read(self, action_id: str, attempt: int) -> bytes:
        """Everything the attempt printed that the sink still has (a tail-only sink: the action's tail)."""
        ...


def keep_tail(record: ActionRecord, text: str, size: int) -> int:
    """Append ``text`` to ``record.logs``, dropping from the front past ``2 * TAIL_CHARS``; returns the new size.

    ``size`` is what the tail holds now (the caller keeps it: summing the chunks on every write would cost the whole
    tail each time). Trimming to ``TAIL_CHARS`` only once twice that is reached keeps the copying linear.
    """
    logs = record.logs
    if logs is None:
        record.logs = [text]
    else:
        logs.append(text)
    size += len(text)
    if size > 2 * TAIL_CHARS:
        kept = "".join(record.logs or ())[-TAIL_CHARS:]
        record.logs = [kept]
        size = len(kept)
    return size


class TailOnly:
    """A sink that keeps each action's tail in its record and nothing else.

    Args:
        actions: the run's action records by id (``Run.actions``); output of an id not in it is dropped.
    """

    def __init__(self, actions: Mapping[str, ActionRecord]) -> None:
        self._actions = actions
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(self, action_id: str, attempt: int, data: str | bytes, stream: Stream = "out") -> None:
        record = self._actions.get(action_id)
        if record is None or not data:
            return
        text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
        with self._lock:
            self._sizes[action_id] = keep_tail(record, text, self._sizes.get(action_id, 0))

    def read(self, action_id: str, attempt: int) -> bytes:
        record = self._actions.get(action_id)
        return "".join(record.logs or ()).encode() if record is not None else b""
