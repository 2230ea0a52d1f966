"""The task's output on its way to the controller: cut into chunks with offsets, resent after a broken stream.

The client's :class:`LogOutbox` takes writes from any thread without blocking and hands the sender chunks of at most
``chunk_size`` bytes, each with its ``offset`` in the attempt's output. A client stream confirms nothing until it
ends, so the outbox keeps the last ``keep`` bytes it handed out: when a stream breaks they are sent again on the next
one. The server's :class:`LogCursor` passes each byte on once: a chunk that overlaps what it already has is cut, a
chunk past it (what the outbox could not keep was lost with the stream) is taken, and the gap counted.

Example:
    >>> outbox = LogOutbox(chunk_size=4)
    >>> _ = outbox.write(b"hello world")
    >>> chunks = outbox.take()
    >>> [(offset, data) for offset, data in chunks]
    [(0, b'hell'), (4, b'o wo'), (8, b'rld')]
    >>> cursor = LogCursor()
    >>> [cursor.accept(offset, data) for offset, data in chunks[:2] + chunks]
    [(b'hell', 0), (b'o wo', 0), (b'', 0), (b'', 0), (b'rld', 0)]
"""

from __future__ import annotations

import threading
from collections import deque

from flytelike.errors import SpecError

__all__ = ["CHUNK_SIZE", "KEEP", "LogCursor", "LogOutbox"]

CHUNK_SIZE = 64 * 1024
"""The largest piece of output one LogChunk carries."""
KEEP = 1024 * 1024
"""How much output sent on a stream is kept until the stream ends, to be sent again if it breaks."""


class LogOutbox:
    """Output waiting to be sent (thread-safe; see the module's docstring)."""

    def __init__(self, *, chunk_size: int = CHUNK_SIZE, keep: int = KEEP) -> None:
        if chunk_size < 1:
            raise SpecError("LogOutbox.chunk_size", chunk_size, "must be a positive number of bytes", accepted="65536")
        if keep < 0:
            raise SpecError("LogOutbox.keep", keep, "must not be negative", accepted="0 (keep nothing), 1048576")
        self._chunk_size = chunk_size
        self._keep = keep
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._pending_offset = 0  # where _pending starts in the output
        self._sent: deque[tuple[int, bytes]] = deque()  # handed out on the current stream, oldest first
        self._sent_size = 0

    def write(self, data: bytes) -> bool:
        """Queue ``data``; True when nothing was pending before (the sender may be idle and must be woken)."""
        if not data:
            return False
        with self._lock:
            was_empty = not self._pending
            self._pending += data
            return was_empty

    def take(self) -> list[tuple[int, bytes]]:
        """Everything pending, as ``(offset, data)`` chunks in order; they count as sent (and are kept) from now."""
        with self._lock:
            pending, offset = bytes(self._pending), self._pending_offset
            self._pending.clear()
            self._pending_offset += len(pending)
            chunks = [
                (offset + start, pending[start : start + self._chunk_size])
                for start in range(0, len(pending), self._chunk_size)
            ]
            for chunk in chunks:
                self._sent.append(chunk)
                self._sent_size += len(chunk[1])
            # Whole chunks are dropped from the front, so what is kept always starts at a chunk's offset.
            while self._sent and self._sent_size - len(self._sent[0][1]) >= self._keep:
                self._sent_size -= len(self._sent.popleft()[1])
            return chunks

    def rewind(self) -> None:
        """The stream broke: what is kept of the output sent on it is pending again, ahead of newer writes."""
        with self._lock:
            if not self._sent:
                return
            start = self._sent[0][0]
            kept = b"".join(data for _, data in self._sent)
            self._pending[:0] = kept
            self._pending_offset = start
            self._sent.clear()
            self._sent_size = 0

    def confirm(self) -> None:
        """The stream ended and the controller has everything sent on it: nothing needs keeping."""
        with self._lock:
            self._sent.clear()
            self._sent_size = 0

    @property
    def pending(self) -> int:
        """Bytes written and not yet taken."""
        with self._lock:
            return len(self._pending)

    @property
    def written(self) -> int:
        """Bytes written so far (the offset the next write starts at)."""
        with self._lock:
            return self._pending_offset + len(self._pending)


class LogCursor:
    """How much of one attempt's output the server has passed on (see the module's docstring)."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received = 0

    def accept(self, offset: int, data: bytes) -> tuple[bytes, int]:
        """The part of a chunk not passed on before, and how many bytes before it never came (0 unless lost)."""
        end = offset + len(data)
        if end <= self.received:
            return b"", 0
        gap = max(0, offset - self.received)
        fresh = data[max(0, self.received - offset) :]
        self.received = end
        return fresh, gap
