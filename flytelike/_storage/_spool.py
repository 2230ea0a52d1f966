"""Task output of a run: in the records' tail while an action prints little, else spooled to files
``<root>/<run>/<action>/<attempt>.log``; and one index for the run.

Most tasks print a few lines, which the action's record keeps anyway (its tail, ``TAIL_CHARS`` and more, see
:mod:`flytelike._executor._logs`): an action's output stays there alone until it passes ``TAIL_CHARS`` bytes, so a
10,000-way fan-out whose tasks print a line each makes no file but the index. An action that prints more gets a
file per attempt, with everything it printed from the start. A ``.log`` file is exactly what the attempt printed
(``cat`` and ``tail -f`` work on it).

The run's index (``<root>/<run>/streams.idx``) says which stream each stretch of each attempt's output went to and
when: entries of a 2-byte length, the action id, then ``<IQdB`` (the attempt, the offset in its output the
stretch starts at, its epoch time, its stream: 0 stdout, 1 stderr, 2 both), one whenever the stream changes or a
millisecond has passed since the last, so a chatty task adds at most a thousand entries a second whatever it
prints. When an action's output moves to another attempt (a retry, or a timed-out attempt's thread printing on),
an entry for the attempt it leaves marks where that one stood: the tail holds the attempts' output in the order it
was printed, and with these marks :func:`kept_logs` splits it into attempts and stretches again. An entry reaches
the index before the output it describes reaches its log; a reader may find the last entries pointing past the end.

:class:`LogSpool` is a run's :class:`~flytelike._executor.LogSink`. An append copies the output into memory (and
the action's tail into its record); a task that goes on printing past the tail has it written by its own appends,
every 0.2 s or 1 MiB, and a thread of the spool writes what was left waiting, and the index, a few attempts every
0.2 s (so ``flytelike logs --follow`` in another process sees lines soon after they are printed). What remains is
written when the run ends. At most 64 log files are kept open. :class:`AttemptLog` reads one attempt's file back,
from the start or from an offset, and its stretches; :class:`KeptLog` the same of output kept in a record.

Example:
    >>> import tempfile, pathlib
    >>> from flytelike._executor import ActionRecord
    >>> with tempfile.TemporaryDirectory() as d:
    ...     actions = {"0": ActionRecord("r1", "0", None, "main", "v1")}
    ...     spool = LogSpool(pathlib.Path(d), "r1", actions)
    ...     spool.append("0", 1, "hello\\n")
    ...     spool.append("0", 1, b"oops\\n", "err")
    ...     spool.close()
    ...     kept = kept_logs(index_entries(pathlib.Path(d) / "r1")["0"], "".join(actions["0"].logs))
    ...     print(actions["0"].log_path, kept[1].read(), [s for _, _, s in kept[1].index()])
    None b'hello\\noops\\n' ['out', 'err']
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from flytelike._executor import STREAMS, TAIL_CHARS, ActionRecord, Stream, keep_tail

__all__ = [
    "INDEX_NAME",
    "AttemptLog",
    "KeptLog",
    "LogSpool",
    "RunIndex",
    "attempt_logs",
    "index_entries",
    "kept_logs",
]

INDEX_NAME = "streams.idx"
_ENTRY = struct.Struct("<IQdB")
_ID_LENGTH = struct.Struct("<H")
_CODE: dict[str, int] = {s: i for i, s in enumerate(STREAMS)}
_OPEN_MOST = 64
_FLUSH_EVERY = 0.2
_WRITE_AT = 1 << 20  # an attempt holding this much is written at once
_TICK = 0.001  # a new index entry at most this often for one stream
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


class _Attempt:
    """One attempt's output: what waits to be written (all of it, while its action's output is kept in the records'
    tail alone), and where its log stands."""

    __slots__ = ("folder", "pending", "size", "stream", "time", "written")

    def __init__(self, folder: str, now: float) -> None:
        self.folder = folder
        self.pending = bytearray()
        self.size = 0  # of its log, counting what is pending
        self.stream = -1
        self.time = 0.0  # of its latest index entry
        self.written = now  # when its output was last written out (or it began)


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
        self._base = str(self.folder)
        self._folders: set[str] = set()  # action folders made
        self._actions = actions
        self._echo = echo
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._dirty: dict[tuple[str, int], _Attempt] = {}
        self._index = bytearray()  # entries not written yet
        self._sizes: dict[str, int] = {}
        # Per action: the bytes it printed, its attempts in the order they printed, and whether its output goes to
        # files (it printed more than the records' tail keeps whole, or it has no record to keep a tail in).
        self._printed: dict[str, int] = {}
        self._attempts_of: dict[str, list[int]] = {}
        self._filed: set[str] = set()
        self._lock = threading.Lock()  # the buffers above
        self._io = threading.Lock()  # the files: one writer at a time, in the order output was taken
        self._files: OrderedDict[tuple[str, int], int] = OrderedDict()  # open log descriptors, oldest first
        self._index_fd: int | None = None
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
        code = _CODE[stream]
        with self._lock:
            order = self._attempts_of.setdefault(action_id, [])
            previous = order[-1] if order else attempt
            found = self._attempts.get(key)
            if found is None:
                found = self._attempts[key] = _Attempt(os.path.join(self._base, action_id), now)
            switched = previous != attempt
            if switched:
                # Where the other attempt's output stands, so that a reader of the action's tail alone (which holds
                # its attempts' output in the order it was printed) knows where that attempt's stretch ended.
                other = self._attempts[(action_id, previous)]
                self._entry(action_id, previous, other, now, other.stream)
            if switched or not order:
                if attempt in order:
                    order.remove(attempt)
                order.append(attempt)
            if switched or code != found.stream or now - found.time >= _TICK:
                self._entry(action_id, attempt, found, now, code)
            found.pending += raw
            found.size += len(raw)
            record = self._actions.get(action_id)
            printed = self._printed[action_id] = self._printed.get(action_id, 0) + len(raw)
            filed = action_id in self._filed
            if not filed and (record is None or printed > TAIL_CHARS):
                # Past what the records' tail keeps whole: from now on in files, with what it printed so far.
                self._filed.add(action_id)
                filed = True
                for n in order:
                    self._dirty[(action_id, n)] = self._attempts[(action_id, n)]
            if filed:
                self._dirty[key] = found
            if record is not None:
                if filed and record.log_path is None:
                    record.log_path = found.folder
                self._sizes[action_id] = keep_tail(record, text, self._sizes.get(action_id, 0))
            # A task printing on and on has its output written by its own appends, every 0.2 s or 1 MiB; what is
            # left waiting is the spool thread's. Output after the run ended (a sync task's thread that outlived
            # its timeout) is written at once. Of an action whose output is in its tail alone, only the index is.
            due = filed and (len(found.pending) >= _WRITE_AT or now - found.written >= _FLUSH_EVERY)
            if due:
                found.written = now
            due = due or self._closed
            if not due and self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_periodically, name="flytelike-logs", daemon=True)
                self._flusher.start()
        if due:
            with contextlib.suppress(OSError):  # a full disk loses output, never the task's print()
                self.flush(only=key)
                if self._closed:
                    self._close_files()
        if stream == "all" and self._echo is not None:
            self._echo(text)

    def _entry(self, action_id: str, attempt: int, found: _Attempt, now: float, code: int) -> None:
        ident = action_id.encode()
        self._index += _ID_LENGTH.pack(len(ident)) + ident + _ENTRY.pack(attempt, found.size, now, code)
        found.stream, found.time = code, now

    def read(self, action_id: str, attempt: int) -> bytes:
        with self._lock:
            found = self._attempts.get((action_id, attempt))
            if found is None:
                return b""
            if action_id not in self._filed:
                return bytes(found.pending)  # all it printed: nothing of it went to a file
        self.flush()
        return AttemptLog(self.path(action_id, attempt)).read()

    def flush(self, *, only: tuple[str, int] | None = None, most: int | None = None) -> None:
        """Write what waits to the files: of every attempt, of ``only``, or of the ``most`` that wait longest.

        The index is written whole each time (before any log, see the module's docstring).
        """
        with self._io:
            with self._lock:
                index, self._index = self._index, bytearray()
                if only is not None:
                    keys = [only] if only in self._dirty else []
                else:
                    keys = list(itertools.islice(self._dirty, most))
                taken = []
                for key in keys:
                    a = self._dirty.pop(key)
                    taken.append((key, a.folder, a.pending))
                    a.pending = bytearray()
            if not index and not taken:
                return
            if self._index_fd is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._index_fd = os.open(self.folder / INDEX_NAME, _APPEND, 0o644)
            # The index first: a reader never finds output in a log without its entry.
            _write_all(self._index_fd, index)
            for key, folder, data in taken:
                _write_all(self._log_fd(key, folder), data)

    def _log_fd(self, key: tuple[str, int], folder: str) -> int:
        fd = self._files.get(key)
        if fd is not None:
            self._files.move_to_end(key)
            return fd
        if len(self._files) >= _OPEN_MOST:
            _, oldest = self._files.popitem(last=False)
            os.close(oldest)
        if key[0] not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(key[0])
        fd = self._files[key] = os.open(os.path.join(folder, f"{key[1]}.log"), _APPEND, 0o644)
        return fd

    def close(self) -> None:
        """Write everything out, close the files and stop the spool's thread; output appended later is written
        through."""
        with self._lock:
            self._closed = True
            flusher, self._flusher = self._flusher, None
        self._stop.set()
        if flusher is not None:
            flusher.join()
        try:
            self.flush()
        except OSError:  # a full disk loses output, never the run
            pass
        finally:
            self._close_files()

    def _close_files(self) -> None:
        with self._io:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()
            if self._index_fd is not None:
                os.close(self._index_fd)
                self._index_fd = None

    def _flush_periodically(self) -> None:
        while not self._stop.wait(_FLUSH_EVERY):
            with contextlib.suppress(OSError):  # a full disk loses output, never the run
                # A few at a time: this thread's system calls would otherwise make it and the event loop take
                # turns at the interpreter lock, slowing both; what it leaves is written at the run's end.
                self.flush(most=_OPEN_MOST)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encoded(text: str) -> bytes:
    try:
        # Bytes a stream decoded with surrogateescape (undecodable file names, say) go back as they were.
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


class RunIndex:
    """A run's index (``folder`` is the run's log folder), read on from where the last read stopped.

    Attributes:
        entries: by action id, in the order written: ``(attempt, offset, time, stream code)``.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / INDEX_NAME
        self.entries: dict[str, list[tuple[int, int, float, int]]] = {}
        self._read = 0

    def read(self) -> set[str]:
        """Read what was added since the last call; returns the ids of the actions it added entries for."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._read)
                data = f.read()
        except OSError:
            return set()
        added: set[str] = set()
        at = 0
        while at + _ID_LENGTH.size <= len(data):
            (length,) = _ID_LENGTH.unpack_from(data, at)
            end = at + _ID_LENGTH.size + length + _ENTRY.size
            if end > len(data):
                break  # an entry being written: read next time
            ident = data[at + _ID_LENGTH.size : at + _ID_LENGTH.size + length].decode(errors="replace")
            self.entries.setdefault(ident, []).append(_ENTRY.unpack_from(data, end - _ENTRY.size))
            added.add(ident)
            at = end
        self._read += at
        return added


def index_entries(folder: Path) -> dict[str, list[tuple[int, int, float, int]]]:
    """The entries of a run's index by action id (see :class:`RunIndex`); empty without an index."""
    index = RunIndex(folder)
    index.read()
    return index.entries


def kept_logs(entries: Sequence[tuple[int, int, float, int]], tail: str) -> dict[int, KeptLog]:
    """The attempts' logs of an action whose output is in its record's tail alone (it printed less than the tail
    keeps, so no file was made), by attempt, from the tail and the action's index ``entries`` (see
    :func:`index_entries`). Empty if there are no entries (a run recorded before logs were spooled).

    The tail holds the attempts' output in the order it was printed; the spool starts an entry whenever the action's
    output moves to another attempt, after one marking where the attempt it leaves stands, so between two entries
    of the action all output is one attempt's: the next entry of the same attempt says how long that stretch is.
    """
    data = _encoded(tail)
    logs: dict[int, tuple[bytearray, list[tuple[int, float, Stream]]]] = {}
    at = 0
    for i, (attempt, offset, when, code) in enumerate(entries):
        if i + 1 < len(entries):
            following = entries[i + 1]
            length = following[1] - offset if following[0] == attempt else 0
        else:
            length = len(data) - at
        chunk = data[at : at + max(0, length)]
        at += len(chunk)
        out, stretches = logs.setdefault(attempt, (bytearray(), []))
        if chunk:
            stretches.append((len(out), when, STREAMS[code]))
            out += chunk
    return {n: KeptLog(bytes(out), stretches) for n, (out, stretches) in sorted(logs.items()) if out}


class KeptLog:
    """One attempt's output as its action's record keeps it (see :func:`kept_logs`), read as an
    :class:`AttemptLog` is."""

    def __init__(self, data: bytes, stretches: list[tuple[int, float, Stream]]) -> None:
        self._data = data
        self._stretches = stretches

    def exists(self) -> bool:
        return True

    def size(self) -> int:
        return len(self._data)

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        return self._data[start:end]

    def index(self) -> list[tuple[int, float, Stream]]:
        return list(self._stretches) if self._stretches else [(0, 0.0, "all")]

    def tail_offset(self, lines: int) -> int:
        """The offset where the last ``lines`` lines start, as :meth:`AttemptLog.tail_offset` counts them."""
        data = self._data
        if lines <= 0:
            return len(data)
        at = len(data) - 1 if data.endswith(b"\n") else len(data)
        for _ in range(lines):
            at = data.rfind(b"\n", 0, at)
            if at < 0:
                return 0
        return at + 1


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
        self._action = path.parent.name.encode()
        self._attempt = int(path.stem) if path.stem.isdecimal() else -1
        self._entries: list[tuple[int, float, Stream]] = []
        self._index_read = 0

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
        """``(offset, time, stream)`` of every stretch, in order; one ``"all"`` stretch from 0 without an index.

        The run's index is read on from where the last call stopped, so following a log costs what was added.
        """
        try:
            with open(self.path.parent.parent / INDEX_NAME, "rb") as f:
                f.seek(self._index_read)
                data = f.read()
        except OSError:
            data = b""
        at = 0
        while at + _ID_LENGTH.size <= len(data):
            (length,) = _ID_LENGTH.unpack_from(data, at)
            end = at + _ID_LENGTH.size + length + _ENTRY.size
            if end > len(data):
                break  # an entry being written: read next time
            ident = data[at + _ID_LENGTH.size : at + _ID_LENGTH.size + length]
            if ident == self._action:
                attempt, offset, when, code = _ENTRY.unpack_from(data, end - _ENTRY.size)
                if attempt == self._attempt:
                    self._entries.append((offset, when, STREAMS[code]))
            at = end
        self._index_read += at
        return list(self._entries) if self._entries else [(0, 0.0, "all")]

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
