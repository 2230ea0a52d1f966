"""Run records, schema version 2: who runs a run (pid, host, heartbeat), why an action failed, transition events,
and files written by schema version 1 brought forward on open."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flytelike._executor._events import Event, FailureKind
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage import RecordStore, _records


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[RecordStore]:
    with RecordStore(db) as s:
        yield s


def event(seq: int, run_id: str = "r", **changes: object) -> Event:
    e = Event(run_id, seq, "0", "running", 1, 1_700_000_000.0 + seq, "", f"reason {seq}")
    return e._replace(**changes)


def test_event_columns_are_the_event_fields() -> None:
    assert Event._fields == _records.EVENT_COLUMNS


def test_new_run_and_action_fields_round_trip(store: RecordStore) -> None:
    # Another host, heard from just now: read back exactly as written (not judged lost).
    run = RunRecord("r", "main", RunState.QUEUED, pid=4242, host="box-1.example", heartbeat=time.time())
    action = ActionRecord(
        "r", "0", None, "main", "v1", ActionState.FAILED, 1, failure_kind=FailureKind.OOM.value, error="killed"
    )
    waiting = ActionRecord("r", "0.0", "0", "t", "v1", ActionState.INITIALIZING)
    store.write(run, [action, waiting])

    assert store.run("r") == run
    got = store.action("r", "0")
    assert got is not None
    assert got.failure_kind == "oom"
    assert got == action
    assert store.action("r", "0.0") == waiting
    assert [a.state for a in store.actions("r")] == [ActionState.FAILED, ActionState.INITIALIZING]


def test_defaults_of_the_new_fields_round_trip(store: RecordStore) -> None:
    run = RunRecord("r", "main", RunState.SUCCEEDED, ended=1.0)
    store.write(run, [ActionRecord("r", "0", None, "main", "v1")])
    assert store.run("r") == run
    got = store.action("r", "0")
    assert got is not None
    assert (got.failure_kind, run.pid, run.host, run.heartbeat) == (None, None, "", None)


def test_events_are_written_with_the_run_and_read_in_order(store: RecordStore) -> None:
    run = RunRecord("r", "main")
    store.write(run, [ActionRecord("r", "0", None, "main", "v1")], [event(2), event(1)])
    store.write(run, [], (event(i) for i in range(3, 6)))  # any iterable
    store.write(RunRecord("other", "main"), [], [event(1, run_id="other")])

    assert [e.seq for e in store.events("r")] == [1, 2, 3, 4, 5]
    assert store.events("r")[0] == event(1)
    assert [e.seq for e in store.events("r", after_seq=2)] == [3, 4, 5]
    assert [e.seq for e in store.events("r", after_seq=1, limit=2)] == [2, 3]
    assert store.events("r", after_seq=5) == []
    assert store.events("r", limit=0) == []
    assert store.events("missing") == []
    assert store.events("other") == [event(1, run_id="other")]


def test_an_event_reported_twice_is_stored_once(store: RecordStore) -> None:
    run = RunRecord("r", "main")
    first = event(1, state="failed", kind="user", reason="ValueError: boom")
    store.write(run, [], [first])
    store.write(run, [], [first, event(2)])
    # The same (run, seq) again, even with other content, leaves the stored event as it was.
    store.write(run, [], [first._replace(reason="something else")])

    assert store.events("r") == [first, event(2)]


def test_a_failed_write_stores_none_of_its_events(store: RecordStore) -> None:
    run = RunRecord("r", "main")
    bad = ActionRecord("r", "0", None, "t", "v")
    bad.attempts = object()  # type: ignore[assignment]  # sqlite3 cannot bind it
    with pytest.raises(sqlite3.ProgrammingError):
        store.write(run, [bad], [event(1)])
    assert store.events("r") == []
    assert store.run("r") is None


def _schema_1_file(path: Path) -> None:
    """A records file exactly as the previous flytelike left it: migration 1 only, with one run and action."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in _records._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs VALUES ('old1', 'main', 'succeeded', 100.0, 101.5, NULL, 'local', '{\"n\": 1}', '3', 1)"
    )
    conn.execute(
        "INSERT INTO actions VALUES ('old1', '0', NULL, 'main', 'v1', 'succeeded', 1, 100.0, 100.5, 101.5, "
        "0, 0, 0, NULL, 0.25, NULL, NULL, 'local', NULL, 'hello\n')"
    )
    conn.close()


def test_a_schema_1_file_opens_and_is_migrated(db: Path) -> None:
    _schema_1_file(db)

    with RecordStore(db) as store:
        run = store.run("old1")
        assert run == RunRecord(
            "old1", "main", RunState.SUCCEEDED, 100.0, 101.5, None, "local", '{"n": 1}', "3", 1, None, "", None
        )
        action = store.action("old1", "0")
        assert action is not None
        assert (action.state, action.cpu_time, action.logs, action.failure_kind) == (
            ActionState.SUCCEEDED,
            0.25,
            ["hello\n"],
            None,
        )
        assert store.events("old1") == []
        # and it takes the new fields and events from now on
        store.write(dataclasses.replace(run, pid=7, host="h", heartbeat=100.5), [], [event(1, run_id="old1")])
        again = store.run("old1")
        assert again is not None
        assert (again.pid, again.host, again.heartbeat) == (7, "h", 100.5)
        assert store.events("old1") == [event(1, run_id="old1")]

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _records.SCHEMA_VERSION == 5
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with RecordStore(db) as store:  # opening a migrated file again changes nothing
        assert store.run("old1") == again


def test_migration_2_appends_to_migration_1() -> None:
    # Migrations are append-only: the first one is what files in the wild were made by.
    assert len(_records._MIGRATIONS) == 5
    assert _records._MIGRATIONS[0][0].startswith("CREATE TABLE runs (")
    assert any("CREATE TABLE events" in s for s in _records._MIGRATIONS[1])
    assert any("group_name" in s for s in _records._MIGRATIONS[2])
    assert any("recovered_from" in s for s in _records._MIGRATIONS[3])
    assert any("log_path" in s for s in _records._MIGRATIONS[4])
