"""Memory limits of process-isolated local tasks: the resident memory of the worker and every process it started.

One thread watches every job that has a limit: every 20 ms it sums the resident memory (RSS) of the job's worker
and of all its descendants (found by parent pid, or by session for processes whose parent exited), keeps the peak,
and past the limit SIGKILLs the whole tree. Address space is not limited: a task may start many threads or map a
large sparse file, and only the memory it really uses counts.

Descendants are found by scanning ``/proc``; a process seen once is not read again unless its pid disappears, so a
poll costs one directory listing plus the processes of the tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["MemoryWatch", "MemoryWatcher", "reset_peak"]

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


class MemoryWatcher:
    """The thread that watches the jobs with a memory limit; started on the first watch, stopped by close()."""

    def __init__(self, interval: float = POLL_SECONDS) -> None:
        self._interval = interval
        self._watches: set[MemoryWatch] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._procs: dict[int, tuple[int, int]] = {}  # pid -> (ppid, session), for every process seen

    def watch(self, pid: int, limit: int, *, kill: bool = True) -> MemoryWatch:
        """Watch a worker's tree; past ``limit`` it is killed, unless ``kill`` is False (the peak is only kept)."""
        reset_peak(pid)
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
        try:
            pids = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        except OSError:
            return
        known = self._procs
        for gone in known.keys() - pids:
            del known[gone]
        for pid in pids - known.keys():
            stat = _stat(pid)
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
        try:
            rss, hwm = _rss_and_peak(watch.pid)
        except (OSError, KeyError, ValueError):
            return  # the worker is gone; the pool reports why
        tree = self._descendants(watch.pid)
        watch.tree = tree
        total = rss + sum(_rss(pid) for pid in tree)
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
