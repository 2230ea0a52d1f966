"""Memory limits where there is no /proc (macOS): the watcher reads the process table and resident memory through
psutil instead. These tests force that path on any system psutil supports, against real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from flytelike._backends.local import _memory
from flytelike._backends.local._memory import MemoryWatcher, ProcProcesses, PsutilProcesses
from flytelike.errors import BackendError

psutil = pytest.importorskip("psutil")

MiB = 2**20
# A parent that starts a child holding `mib` MiB, prints the child's pid and waits: the memory is a descendant's.
HOG = "import time; b = b'x' * ({mib} * 2**20); print('ready', flush=True); time.sleep(30)"
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {hog!r}], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "ready"
print(child.pid, flush=True)
time.sleep(30)
"""


@pytest.fixture
def parent() -> Iterator[Callable[[int], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(mib: int) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", PARENT.format(hog=HOG.format(mib=mib))],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        _memory.kill_tree(proc.pid)
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_without_proc_the_watcher_uses_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "_has_proc", lambda: False)
    assert isinstance(_memory.processes(), PsutilProcesses)
    monkeypatch.setattr(_memory, "_has_proc", lambda: True)
    assert isinstance(_memory.processes(), ProcProcesses)


def test_psutil_sees_the_same_tree_and_memory_as_proc(parent: Callable[[int], subprocess.Popen[str]]) -> None:
    proc = parent(40)
    child = int(proc.stdout.readline()) if proc.stdout else 0
    source = PsutilProcesses()
    assert child in source.pids()
    stat = source.stat(child)
    assert stat is not None
    ppid, session = stat
    assert (ppid, session) == (proc.pid, os.getsid(proc.pid))
    assert source.rss(child) >= 40 * MiB
    assert source.stat(2**22 + 12345) is None  # no such process
    assert source.rss(2**22 + 12345) == 0
    if os.path.isdir("/proc/self"):  # where both exist, they agree
        assert ProcProcesses().stat(child) == (ppid, session)


def test_a_tree_past_its_limit_is_killed_with_its_peak_through_psutil(
    parent: Callable[[int], subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_memory, "_has_proc", lambda: False)
    watcher = MemoryWatcher(interval=0.01)
    try:
        proc = parent(120)
        child = int(proc.stdout.readline()) if proc.stdout else 0
        watch = watcher.watch(proc.pid, 64 * MiB)
        assert wait_until(lambda: watch.killed)
        assert watch.peak >= 120 * MiB
        assert child in watch.tree
        assert wait_until(lambda: gone(child) and proc.poll() is not None)
    finally:
        watcher.close()


def test_a_tree_within_its_limit_keeps_running_and_reports_its_peak(
    parent: Callable[[int], subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_memory, "_has_proc", lambda: False)
    watcher = MemoryWatcher(interval=0.01)
    try:
        proc = parent(30)
        child = int(proc.stdout.readline()) if proc.stdout else 0
        watch = watcher.watch(proc.pid, 1024 * MiB)
        assert wait_until(lambda: watch.peak >= 30 * MiB)
        assert not watch.killed
        assert proc.poll() is None
        assert not gone(child)
    finally:
        watcher.close()


def test_without_psutil_a_memory_limit_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "_has_proc", lambda: False)
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    watcher = MemoryWatcher()
    with pytest.raises(BackendError, match="need psutil on a system without /proc: pip install psutil"):
        watcher.watch(os.getpid(), 64 * MiB)
    watcher.close()
