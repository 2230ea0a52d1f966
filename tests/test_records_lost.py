"""A run recorded as queued or running whose process is gone is read back as lost, never running forever; and the
reading writes nothing."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage import LOST_AFTER, RecordStore
from flytelike._storage._liveness import process_gone

HOST = socket.gethostname()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore(tmp_path / "runs.sqlite3") as s:
        yield s


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def stored_state(store: RecordStore, run_id: str) -> str:
    with sqlite3.connect(store.path) as conn:
        return str(conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()[0])


def running(run_id: str = "r", **fields: object) -> RunRecord:
    return RunRecord(run_id, "main", **fields)  # type: ignore[arg-type]


def test_a_run_whose_process_is_gone_is_lost(store: RecordStore, dead_pid: int) -> None:
    store.write(running(pid=dead_pid, host=HOST), [])
    run = store.run("r")
    assert run is not None
    assert run.state is RunState.LOST
    assert [r.state for r in store.runs()] == [RunState.LOST]
    assert stored_state(store, "r") == "running"  # judged on read, never written back


def test_a_queued_run_whose_process_is_gone_is_lost_too(store: RecordStore, dead_pid: int) -> None:
    store.write(running(state=RunState.QUEUED, pid=dead_pid, host=HOST), [])
    assert store.runs()[0].state is RunState.LOST


def test_a_run_whose_process_is_alive_is_running(store: RecordStore, sleeper: subprocess.Popen[bytes]) -> None:
    store.write(running(pid=sleeper.pid, host=HOST), [])
    assert store.runs()[0].state is RunState.RUNNING


def test_a_zombie_process_is_gone(store: RecordStore, sleeper: subprocess.Popen[bytes]) -> None:
    # Killed but not yet reaped by its parent: the pid still answers kill(pid, 0), yet the process has ended.
    store.write(running(pid=sleeper.pid, host=HOST), [])
    sleeper.kill()
    deadline = time.monotonic() + 5
    while store.runs()[0].state is RunState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.runs()[0].state is RunState.LOST


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see when a process started")
def test_a_reused_pid_is_gone(store: RecordStore, sleeper: subprocess.Popen[bytes]) -> None:
    # The run started an hour ago; the process now holding its pid started a moment ago, so it is another one.
    store.write(running(pid=sleeper.pid, host=HOST, created=time.time() - 3600), [])
    assert store.runs()[0].state is RunState.LOST
    assert process_gone(sleeper.pid, since=time.time() - 3600)
    assert not process_gone(sleeper.pid, since=time.time())


def test_pids_that_name_no_single_process_are_gone() -> None:
    assert process_gone(0, since=0.0)
    assert process_gone(-1, since=0.0)


def test_a_stale_heartbeat_is_lost_on_any_host(store: RecordStore, sleeper: subprocess.Popen[bytes]) -> None:
    stale = time.time() - LOST_AFTER - 5
    store.write(running("elsewhere", pid=123, host="another-host.example", heartbeat=stale), [])
    store.write(running("here", pid=sleeper.pid, host=HOST, heartbeat=stale), [])  # alive, but pid may be reused
    assert {r.id: r.state for r in store.runs()} == {"elsewhere": RunState.LOST, "here": RunState.LOST}


def test_a_fresh_heartbeat_elsewhere_is_running(store: RecordStore) -> None:
    store.write(running(pid=123, host="another-host.example", heartbeat=time.time() - 1), [])
    assert store.runs()[0].state is RunState.RUNNING


def test_a_run_that_cannot_be_judged_keeps_its_state(store: RecordStore, dead_pid: int) -> None:
    store.write(running("old"), [])  # written by an older flytelike: no pid, no heartbeat
    store.write(running("far", pid=dead_pid, host="another-host.example"), [])  # a pid of another machine
    assert {r.id: r.state for r in store.runs()} == {"old": RunState.RUNNING, "far": RunState.RUNNING}


def test_finished_runs_are_never_lost(store: RecordStore, dead_pid: int) -> None:
    for state in (RunState.SUCCEEDED, RunState.FAILED, RunState.ABORTED):
        store.write(RunRecord(state.value, "main", state, ended=1.0, pid=dead_pid, host=HOST, heartbeat=1.0), [])
    assert {r.id: r.state.value for r in store.runs()} == {
        "succeeded": "succeeded",
        "failed": "failed",
        "aborted": "aborted",
    }


def test_a_run_that_finishes_after_being_seen_lost_reads_as_finished(store: RecordStore) -> None:
    stale = time.time() - LOST_AFTER - 5
    store.write(running(pid=123, host="another-host.example", heartbeat=stale), [])
    assert store.runs()[0].state is RunState.LOST
    # Its process was only slow to report; it finishes, and nothing read earlier overrides that.
    store.write(RunRecord("r", "main", RunState.SUCCEEDED, ended=time.time(), heartbeat=time.time()), [])
    assert store.runs()[0].state is RunState.SUCCEEDED


def test_the_unfinished_actions_of_a_lost_run_read_as_aborted(store: RecordStore) -> None:
    seen = time.time() - LOST_AFTER - 60
    created = seen - 100
    actions = [
        ActionRecord("r", "0", None, "main", "v", ActionState.RUNNING, 1, created, created + 1),
        ActionRecord("r", "0.0", "0", "t", "v", ActionState.SUCCEEDED, 1, created, created + 2, created + 3),
        ActionRecord("r", "0.1", "0", "t", "v", ActionState.WAITING, 0, created + 4),
        ActionRecord("r", "0.2", "0", "t", "v", ActionState.FAILED, 2, created, created + 2, created + 5),
    ]
    store.write(running(created=created, pid=1, host="another-host.example", heartbeat=seen), actions)

    got = {a.id: (a.state, a.ended) for a in store.actions("r")}
    assert got == {
        "0": (ActionState.ABORTED, seen),
        "0.0": (ActionState.SUCCEEDED, created + 3),
        "0.1": (ActionState.ABORTED, seen),
        "0.2": (ActionState.FAILED, created + 5),
    }
    one = store.action("r", "0")
    assert one is not None
    assert (one.state, one.ended) == (ActionState.ABORTED, seen)
    # ...but a live run's actions are reported as they are
    store.write(running(created=created, pid=1, host="another-host.example", heartbeat=time.time()), [])
    assert [a.state for a in store.actions("r")] == [a.state for a in actions]


def test_last_seen_is_the_heartbeat_else_the_latest_time_recorded(store: RecordStore, dead_pid: int) -> None:
    store.write(running("hb", heartbeat=1234.5, created=1000.0), [])
    hb = store.run("hb")
    assert hb is not None
    assert store.last_seen(hb) == 1234.5

    store.write(running("bare", created=1000.0, pid=dead_pid, host=HOST), [])
    bare = store.run("bare")
    assert bare is not None
    assert store.last_seen(bare) == 1000.0  # nothing recorded after its creation

    actions = [
        ActionRecord("acts", "0", None, "main", "v", ActionState.RUNNING, 1, 1000.0, 1001.0),
        ActionRecord("acts", "0.0", "0", "t", "v", ActionState.SUCCEEDED, 1, 1002.0, 1003.0, 1010.0),
    ]
    store.write(running("acts", created=1000.0, pid=dead_pid, host=HOST), actions)  # no events yet
    acts = store.run("acts")
    assert acts is not None
    assert store.last_seen(acts) == 1010.0
    store.write(
        running("acts", created=1000.0, pid=dead_pid, host=HOST), actions, [Event("acts", 1, "0", "running", 1, 1005.0)]
    )
    acts = store.run("acts")
    assert acts is not None
    assert store.last_seen(acts) == 1010.0
    store.write(acts, [], [Event("acts", 2, "0", "running", 1, 1020.0)])
    assert store.last_seen(acts) == 1020.0

    done = RunRecord("done", "main", RunState.SUCCEEDED, created=1000.0, ended=1050.0, heartbeat=1049.0)
    assert store.last_seen(done) == 1050.0


def test_reading_works_on_a_read_only_database(store: RecordStore, dead_pid: int) -> None:
    # Readers never write: judging a run lost works where nothing may be written.
    store.write(running(pid=dead_pid, host=HOST), [ActionRecord("r", "0", None, "main", "v", ActionState.RUNNING)])
    store._conn.execute("PRAGMA query_only = ON")
    assert store.runs()[0].state is RunState.LOST
    assert store.actions("r")[0].state is ActionState.ABORTED
