"""Task output spooled to files: ``<root>/<run>/<action>/<attempt>.log``, beside an index ``<attempt>.idx``.

The ``.log`` file is exactly what the attempt printed (``cat`` and ``tail -f`` work on it). The index says which
stream each stretch of it went to and when: fixed 17-byte entries (``<QdB``: the offset the stretch starts at, its
epoch time, its stream: 0 stdout, 1 stderr, 2 both), one whenever the stream changes or a millisecond has passed
since the last, so a chatty task adds at most a thousand entries a second whatever it prints. An entry reaches the
file before the output it describes; a reader may find the last entries pointing past the end of the log.

:class:`LogSpool` is a run's :class:`~flytelike._executor.LogSink`: it writes through buffered files, flushed by a
thread of its own every 0.2 s while output arrives (so ``flytelike logs --follow`` in another process sees lines
within that), keeps at most 64 files open, and keeps each action's tail in its record.
:class:`AttemptLog` reads one attempt back, from the start or from an offset, and with the index.

Example:
    >>> import tempfile, pathlib
    >>> from flytelike._executor import ActionRecord
    >>> with tempfile.TemporaryDirectory() as d:
    ...     actions = {"0": ActionRecord("r1", "0", None, "main", "v1")}
    ...     spool = LogSpool(pathlib.Path(d), "r1", actions)
    ...     spool.append("0", 1, "hello\\n")
    ...     spool.append("0", 1, b"oops\\n", "err")
    ...     spool.close()
    ...     log = AttemptLog(pathlib.Path(actions["0"].log_path) / "1.log")
    ...     print(log.read(), [s for _, _, s in log.index()], actions["0"].logs)
    b'hello\\noops\\n' ['out', 'err'] ['hello\\n', 'oops\\n']
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from flytelike._executor import STREAMS, ActionRecord, Stream, keep_tail

__all__ = ["INDEX_ENTRY", "AttemptLog", "LogSpool", "attempt_logs"]

INDEX_ENTRY = struct.Struct("<QdB")
_CODE: dict[str, int] = {s: i for i, s in enumerate(STREAMS)}
_OPEN_MOST = 64
_FLUSH_EVERY = 0.2
_TICK = 0.001  # a new index entry at most this often for one stream


class _Open:
    """One attempt's files while it is being written."""

    __slots__ = ("dirty", "index", "log", "offset", "stream", "time")

    def __init__(self, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log: BinaryIO = open(log_path, "ab")  # noqa: SIM115 - kept open across appends, closed by the spool
        # Unbuffered (an entry is written at most once a millisecond): an entry is on disk before the bytes it
        # describes, so a reader following the log never sees output without knowing its stream and time.
        self.index: BinaryIO = open(log_path.with_suffix(".idx"), "ab", buffering=0)  # noqa: SIM115 - as above
        self.offset = self.log.tell()
        self.stream = -1
        self.time = 0.0
        self.dirty = False

    def write(self, data: bytes, code: int, now: float) -> None:
        if code != self.stream or now - self.time >= _TICK:
            self.index.write(INDEX_ENTRY.pack(self.offset, now, code))
            self.stream, self.time = code, now
        self.log.write(data)
        self.offset += len(data)
        self.dirty = True

    def flush(self) -> None:
        self.log.flush()
        self.dirty = False

    def close(self) -> None:
        self.flush()
        self.log.close()
        self.index.close()


class LogSpool:
    """A run's output, spooled to files under ``root/<run id>`` (see the module's docstring).

    Args:
        root: the folder of all runs' logs (``$FLYTELIKE_HOME/logs``).
        run_id: the run.
        actions: the run's action records by id (``Run.actions``): their ``logs`` tail and ``log_path`` are kept up
            to date; output of an id not in it is spooled all the same.
        echo: called with output that was not printed by this process (stream ``"all"``: a worker process's), to
            show it here as well.
    """

    def __init__(
        self,
        root: Path,
        run_id: str,
        actions: Mapping[str, ActionRecord],
        *,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = root / run_id
        self._actions = actions
        self._echo = echo
        self._open: OrderedDict[tuple[str, int], _Open] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    def path(self, action_id: str, attempt: int) -> Path:
        """The log file of one attempt (it exists once the attempt printed something)."""
        return self.folder / action_id / f"{attempt}.log"

    def append(self, action_id: str, attempt: int, data: str | bytes, stream: Stream = "out") -> None:
        if not data:
            return
        if isinstance(data, str):
            text, raw = data, _encoded(data)
        else:
            text, raw = data.decode("utf-8", errors="replace"), data
        now = time.time()
        key = (action_id, attempt)
        with self._lock:
            handle = self._open.get(key)
            if handle is None:
                handle = self._opened(key)
            else:
                self._open.move_to_end(key)
            handle.write(raw, _CODE[stream], now)
            record = self._actions.get(action_id)
            if record is not None:
                if record.log_path is None:
                    record.log_path = str(self.folder / action_id)
                self._sizes[action_id] = keep_tail(record, text, self._sizes.get(action_id, 0))
            if self._closed:
                # Output after the run ended (a sync task's thread that outlived its timeout): written through.
                handle.flush()
            elif self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_periodically, name="flytelike-logs", daemon=True)
                self._flusher.start()
        if stream == "all" and self._echo is not None:
            self._echo(text)

    def _opened(self, key: tuple[str, int]) -> _Open:
        if len(self._open) >= _OPEN_MOST:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        handle = self._open[key] = _Open(self.path(*key))
        return handle

    def read(self, action_id: str, attempt: int) -> bytes:
        with self._lock:
            handle = self._open.get((action_id, attempt))
            if handle is not None:
                handle.flush()
        return AttemptLog(self.path(action_id, attempt)).read()

    def flush(self) -> None:
        """Write out what is buffered (the flushing thread does this every 0.2 s)."""
        with self._lock:
            for handle in self._open.values():
                if handle.dirty:
                    handle.flush()

    def close(self) -> None:
        """Flush and close every file and stop the flushing thread; output appended later is written through."""
        with self._lock:
            self._closed = True
            flusher, self._flusher = self._flusher, None
            for handle in self._open.values():
                handle.close()
            self._open.clear()
        self._stop.set()
        if flusher is not None:
            flusher.join()

    def _flush_periodically(self) -> None:
        while not self._stop.wait(_FLUSH_EVERY):
            with contextlib.suppress(OSError):  # a full disk loses output, never the run
                self.flush()


def _encoded(text: str) -> bytes:
    try:
        # Bytes a stream decoded with surrogateescape (undecodable file names, say) go back as they were.
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


def attempt_logs(folder: Path) -> list[int]:
    """The attempts of an action that have a log file in ``folder``, in order."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isdecimal())


class AttemptLog:
    """One attempt's log file and its index, for reading (while it is being written, too)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """The bytes from ``start`` to ``end`` (default: the end of the file as it is now)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except OSError:
            return b""

    def index(self) -> list[tuple[int, float, Stream]]:
        """``(offset, time, stream)`` of every stretch, in order; one ``"all"`` stretch from 0 without an index."""
        try:
            data = self.path.with_suffix(".idx").read_bytes()
        except OSError:
            return [(0, 0.0, "all")]
        whole = len(data) - len(data) % INDEX_ENTRY.size  # an entry being written is read next time
        return [(o, t, STREAMS[c]) for o, t, c in INDEX_ENTRY.iter_unpack(data[:whole])]

    def tail_offset(self, lines: int) -> int:
        """The offset where the last ``lines`` lines start (0 if the file has fewer), read backwards in blocks."""
        end = self.size()
        if lines <= 0:
            return end
        block = 64 * 1024
        position = end
        found = 0
        with open(self.path, "rb") as f:
            # A final line without its newline counts as a line; a trailing newline does not start one.
            f.seek(max(0, end - 1))
            skip_last = f.read(1) == b"\n"
            while position > 0:
                start = max(0, position - block)
                f.seek(start)
                chunk = f.read(position - start)
                stop = len(chunk) - 1 if skip_last and position == end else len(chunk)
                at = chunk.rfind(b"\n", 0, stop)
                while at >= 0:
                    found += 1
                    if found == lines:
                        return start + at + 1
                    at = chunk.rfind(b"\n", 0, at)
                position = start
        return 0
