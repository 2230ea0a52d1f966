"""Memory limits of process-isolated local tasks: the resident memory of the worker and every process it started.

One thread watches every job that has a limit: every 20 ms it sums the resident memory (RSS) of the job's worker
and of all its descendants (found by parent pid, or by session for processes whose parent exited), keeps the peak,
and past the limit SIGKILLs the whole tree. Address space is not limited: a task may start many threads or map a
large sparse file, and only the memory it really uses counts.

Descendants are found by scanning ``/proc``; a process seen once is not read again unless its pid disappears, so a
poll costs one directory listing plus the processes of the tree. Where there is no ``/proc`` (macOS, the BSDs) the
same facts come from psutil (imported only then): the process table, each process's parent and session, and its
resident memory. There the peak is the largest sum a poll saw, as no high-water mark is kept by the system.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flytelike.errors import BackendError

__all__ = ["MemoryWatch", "MemoryWatcher", "ProcProcesses", "Processes", "PsutilProcesses", "processes", "reset_peak"]

POLL_SECONDS = 0.02
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STATUS = re.compile(rb"^(VmRSS|VmHWM):\s+(\d+)", re.MULTILINE)


@dataclass(slots=True, eq=False)
class MemoryWatch:
    """One job's limit, and what the watcher saw: the peak (bytes) and whether it killed the job."""

    pid: int
    limit: int
    kill: bool = True
    peak: int = 0
    killed: bool = False
    tree: set[int] = field(default_factory=set)


def reset_peak(pid: int) -> None:
    """Reset a process's VmHWM to its current RSS, so a peak read later belongs to the job that starts now."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class Processes(Protocol):
    """Where the watcher reads the process table and memory from."""

    def pids(self) -> set[int]:
        """Every process's pid; raises OSError if the table cannot be read."""
        ...

    def stat(self, pid: int) -> tuple[int, int] | None:
        """``(parent pid, session id)`` of a process, or None if it is gone."""
        ...

    def rss(self, pid: int) -> int:
        """Resident memory in bytes (0 if the process is gone)."""
        ...

    def rss_and_peak(self, pid: int) -> tuple[int, int]:
        """Resident memory and its high-water mark, in bytes; raises OSError if the process is gone."""
        ...

    def reset_peak(self, pid: int) -> None:
        """Start the high-water mark afresh (for the job about to start)."""
        ...


class ProcProcesses:
    """Linux's ``/proc``: no dependency, and a kernel-kept peak (VmHWM)."""

    def pids(self) -> set[int]:
        return {int(name) for name in os.listdir("/proc") if name.isdigit()}

    def stat(self, pid: int) -> tuple[int, int] | None:
        return _stat(pid)

    def rss(self, pid: int) -> int:
        return _rss(pid)

    def rss_and_peak(self, pid: int) -> tuple[int, int]:
        return _rss_and_peak(pid)

    def reset_peak(self, pid: int) -> None:
        reset_peak(pid)


class PsutilProcesses:
    """psutil, for systems without ``/proc``; the peak is the largest resident memory a poll saw."""

    def __init__(self) -> None:
        try:
            # Only systems without /proc need it, and only once a task has a memory limit: imported here so that
            # neither start-up nor Linux pays for it.
            import psutil
        except ImportError:
            raise BackendError(
                "memory limits of process-isolated tasks need psutil on a system without /proc: "
                "pip install psutil (or drop the task's memory limit)"
            ) from None
        self._psutil: Any = psutil

    def pids(self) -> set[int]:
        return set(self._psutil.pids())

    def stat(self, pid: int) -> tuple[int, int] | None:
        try:
            return self._psutil.Process(pid).ppid(), os.getsid(pid)
        except (self._psutil.Error, OSError):
            return None

    def rss(self, pid: int) -> int:
        try:
            return int(self._psutil.Process(pid).memory_info().rss)
        except self._psutil.Error:
            return 0

    def rss_and_peak(self, pid: int) -> tuple[int, int]:
        try:
            rss = int(self._psutil.Process(pid).memory_info().rss)
        except self._psutil.Error as e:
            raise ProcessLookupError(pid) from e
        return rss, rss

    def reset_peak(self, pid: int) -> None:
        """Nothing to reset: the peak is only what the polls saw, and each watch starts its own."""


def _has_proc() -> bool:
    return os.path.isdir("/proc/self")


def processes() -> Processes:
    """``/proc`` where the system has it, else psutil."""
    return ProcProcesses() if _has_proc() else PsutilProcesses()


class MemoryWatcher:
    """The thread that watches the jobs with a memory limit; started on the first watch, stopped by close()."""

    def __init__(self, interval: float = POLL_SECONDS, *, source: Processes | None = None) -> None:
        self._interval = interval
        self._source = source  # chosen on the first watch: a pool whose tasks set no limit never needs one
        self._watches: set[MemoryWatch] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._procs: dict[int, tuple[int, int]] = {}  # pid -> (ppid, session), for every process seen

    def watch(self, pid: int, limit: int, *, kill: bool = True) -> MemoryWatch:
        """Watch a worker's tree; past ``limit`` it is killed, unless ``kill`` is False (the peak is only kept).

        Raises:
            BackendError: the system has no ``/proc`` and psutil is not installed.
        """
        source = self._source
        if source is None:
            source = self._source = processes()
        source.reset_peak(pid)
        watch = MemoryWatch(pid, limit, kill)
        with self._changed:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flytelike-memory", daemon=True)
                self._thread.start()
            self._changed.notify()
        return watch

    def unwatch(self, watch: MemoryWatch) -> None:
        with self._changed:
            self._watches.discard(watch)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._watches.clear()
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._watches and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                watches = list(self._watches)
            self._scan()
            for watch in watches:
                self._check(watch)
            with self._changed:
                # Woken early by close(), which the check at the top of the loop then sees.
                self._changed.wait(self._interval)

    def _scan(self) -> None:
        source = self._source
        assert source is not None  # set by the first watch, before the thread starts
        try:
            pids = source.pids()
        except OSError:
            return
        known = self._procs
        for gone in known.keys() - pids:
            del known[gone]
        for pid in pids - known.keys():
            stat = source.stat(pid)
            if stat is not None:
                known[pid] = stat

    def _descendants(self, root: int) -> set[int]:
        children: dict[int, list[int]] = {}
        found = set()
        for pid, (ppid, session) in self._procs.items():
            children.setdefault(ppid, []).append(pid)
            if session == root and pid != root:
                found.add(pid)  # its parent exited, but it is still in the worker's session
        stack = [root]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        found.discard(root)
        return found

    def _check(self, watch: MemoryWatch) -> None:
        source = self._source
        assert source is not None
        try:
            rss, hwm = source.rss_and_peak(watch.pid)
        except (OSError, KeyError, ValueError):
            return  # the worker is gone; the pool reports why
        tree = self._descendants(watch.pid)
        watch.tree = tree
        total = rss + sum(source.rss(pid) for pid in tree)
        watch.peak = max(watch.peak, total, hwm)
        if watch.kill and watch.peak > watch.limit and not watch.killed:
            watch.killed = True
            kill_tree(watch.pid, tree)


def kill_tree(pid: int, descendants: Iterable[int] = ()) -> None:
    """SIGKILL a worker, its process group and the given descendants (some may have left the group)."""
    for target in (pid, *descendants):
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _stat(pid: int) -> tuple[int, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields after its last ")" are fixed.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _rss_and_peak(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status", "rb") as f:
        values = dict(_STATUS.findall(f.read()))
    return int(values[b"VmRSS"]) * 1024, int(values[b"VmHWM"]) * 1024
