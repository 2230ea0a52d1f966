"""Memory limits of process-isolated tasks count resident memory of the task's whole process tree, not address
space: many threads and large sparse mappings fit, memory used by a subprocess the task starts counts, and going
past the limit is an OutOfMemoryError with the peak seen, to which the retry policy's memory escalation applies."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from module_files import module_writer

import flytelike as fl
from flytelike._config import load_settings
from flytelike._storage import RecordStore
from flytelike.errors import OutOfMemoryError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory limits read /proc (Linux only)")

MiB = 2**20
HEADER = """
import mmap
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import flytelike as fl

iso = fl.TaskEnvironment(name="mem", platform=fl.Local(process=True))

# Run in a subprocess of the task: touch `mib` MiB, then report its pid and wait.
HOG = "import os, sys, time; b = b'x' * (int(sys.argv[1]) * 2**20); print(os.getpid(), flush=True); time.sleep(30)"
"""


@pytest.fixture
def write_module(tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    with module_writer(tmp_path, HEADER, "memory") as write:
        yield write


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_many_threads_and_a_large_sparse_mapping_fit_in_a_small_limit(
    write_module: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    m = write_module(
        f"""
        @iso.task(resources=fl.Resources(memory="256Mi"))
        def roomy() -> list[int]:
            release = threading.Event()
            threads = [threading.Thread(target=release.wait) for _ in range(64)]
            for t in threads:
                t.start()
            alive = sum(t.is_alive() for t in threads)
            path = Path({str(tmp_path / "sparse.bin")!r})
            with path.open("wb") as f:
                f.truncate(8 * 2**30)  # 8 GiB of address space, almost none of it resident
            with path.open("r+b") as f, mmap.mmap(f.fileno(), 0) as mapped:
                mapped[0] = 1
                mapped[len(mapped) - 1] = 1
                size = len(mapped)
            release.set()
            for t in threads:
                t.join()
            return [alive, size]
        """
    )
    handle = fl.run(m.roomy)
    assert handle.outputs == [64, 8 * 2**30]


def test_memory_a_subprocess_of_the_task_uses_counts_and_the_whole_tree_is_killed(
    write_module: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    m = write_module(
        f"""
        @iso.task(resources=fl.Resources(memory="200Mi"))
        def spawns() -> None:
            child = subprocess.Popen([sys.executable, "-c", HOG, "400"], stdout=subprocess.PIPE, text=True)
            Path({str(tmp_path / "child.pid")!r}).write_text(child.stdout.readline())
            child.wait()
        """
    )
    with pytest.raises(OutOfMemoryError, match=r"memory limit of 200\.0 MiB") as caught:
        fl.run(m.spawns)
    assert caught.value.task == "mem.spawns"
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
        [action] = store.actions(run.id)
    assert action.peak_memory is not None
    assert action.peak_memory > 200 * MiB
    pid = tmp_path / "child.pid"
    if pid.exists() and pid.read_text().strip():
        assert not alive(int(pid.read_text()))


def test_an_out_of_memory_subprocess_gets_more_memory_on_the_next_attempt(
    write_module: Callable[[str], ModuleType],
) -> None:
    m = write_module(
        """
        @iso.task(
            resources=fl.Resources(memory="150Mi"),
            retries=fl.RetryPolicy(1, oom_memory_multiplier=4),
        )
        def grows() -> int:
            child = subprocess.Popen([sys.executable, "-c", HOG, "250"], stdout=subprocess.PIPE, text=True)
            child.stdout.readline()
            time.sleep(0.3)  # long enough for the memory watch to see it
            child.kill()
            child.wait()
            return os.getpid()
        """
    )
    assert fl.run(m.grows).outputs != os.getpid()
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
        [action] = store.actions(run.id)
    assert (action.state.value, action.attempts, action.memory) == ("succeeded", 2, 600 * MiB)
