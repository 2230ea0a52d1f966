"""Run records and the local cache in SQLite: round trips, upserts, ordering, lookups, speed and concurrency."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage import CacheStore, RecordStore, _records
from flytelike.errors import FlytelikeError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "deep" / "home" / "runs.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[RecordStore]:
    with RecordStore(db) as s:
        yield s


def full_run(run_id: str = "r-1", created: float = 1_700_000_000.25) -> RunRecord:
    return RunRecord(
        id=run_id,
        task="main",
        state=RunState.FAILED,
        created=created,
        ended=created + 3.5,
        error="task train failed: ValueError: boom",
        platform="kubernetes",
        inputs_json='{"n": 3}',
        outputs_json='{"o0": 1.5}',
        actions=7,
    )


def full_action(run_id: str = "r-1", action_id: str = "0.1", **changes: object) -> ActionRecord:
    action = ActionRecord(
        run_id=run_id,
        id=action_id,
        parent="0",
        task="train",
        task_version="abc123",
        state=ActionState.TIMED_OUT,
        attempts=3,
        created=1_700_000_000.5,
        started=1_700_000_001.0,
        ended=1_700_000_002.75,
        cpu_millis=1500,
        memory=3 * 1024**3 // 2,
        gpus=2,
        peak_memory=1_234_567_890,
        cpu_time=0.625,
        error="Traceback (most recent call last):\n  File x\nTimeoutError: slow",
        error_type="timeout",
        platform="batch",
        cache_key="deadbeef",
        logs=["hello ", "world\n", "again\n"],
    )
    return dataclasses.replace(action, **changes)  # type: ignore[arg-type]


def as_stored(action: ActionRecord) -> dict[str, object]:
    """What a round trip keeps: every field, with the log chunks joined into one."""
    data = dataclasses.asdict(action)
    data["logs"] = ["".join(action.logs)] if action.logs else []
    return data


def test_columns_cover_every_field_of_the_records() -> None:
    # A field added to the model without a column would be silently dropped on write.
    assert tuple(f.name for f in dataclasses.fields(RunRecord)) == _records.RUN_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(ActionRecord)) == _records.ACTION_COLUMNS


def test_round_trip_keeps_every_field(store: RecordStore, db: Path) -> None:
    run, action = full_run(), full_action()
    store.write(run, [action, full_action(action_id="0", parent=None, logs=[])])

    assert db.is_file()
    assert store.run("r-1") == run
    got = store.action("r-1", "0.1")
    assert got is not None
    assert dataclasses.asdict(got) == as_stored(action)
    assert isinstance(got.state, ActionState)
    root = store.action("r-1", "0")
    assert root is not None
    assert root.parent is None
    assert root.logs is None  # nothing printed
    assert store.action("r-1", "9") is None
    assert store.action("other", "0.1") is None


def test_optional_fields_round_trip_as_none(store: RecordStore) -> None:
    run = RunRecord("r-2", "main")
    action = ActionRecord("r-2", "0", None, "main", "v1")
    store.write(run, [action])

    assert store.run("r-2") == run
    got = store.action("r-2", "0")
    assert got is not None
    assert dataclasses.asdict(got) == dataclasses.asdict(action)
    assert got.peak_memory is None
    assert got.cpu_time is None


def test_write_upserts_runs_and_actions(store: RecordStore) -> None:
    run = RunRecord("r-1", "main", created=100.0)
    store.write(run, [ActionRecord("r-1", "0", None, "main", "v1", created=100.0)])
    store.write(run, [ActionRecord("r-1", "0.0", "0", "train", "v1")])

    run.state, run.ended, run.actions = RunState.SUCCEEDED, 105.0, 2
    done = ActionRecord(
        "r-1", "0", None, "main", "v1", state=ActionState.SUCCEEDED, attempts=2, started=101.0, ended=104.0
    )
    done.logs = ["first\n", "second\n"]
    store.write(run, [done])
    store.write(run, [])  # the final write may carry no actions; the run still updates

    assert [a.id for a in store.actions("r-1")] == ["0", "0.0"]
    got = store.action("r-1", "0")
    assert got is not None
    assert (got.state, got.attempts, got.ended) == (ActionState.SUCCEEDED, 2, 104.0)
    assert got.logs == ["first\nsecond\n"]
    stored_run = store.run("r-1")
    assert stored_run is not None
    assert (stored_run.state, stored_run.ended, stored_run.actions) == (RunState.SUCCEEDED, 105.0, 2)
    assert len(store.runs()) == 1


def test_actions_are_in_natural_id_order(store: RecordStore) -> None:
    ids = ["0.10", "0.2", "0", "0.1.0", "0.1", "0.0", "0.1.10", "0.1.9", "0.11"]
    store.write(RunRecord("r", "main"), [ActionRecord("r", i, None, "t", "v") for i in ids])

    assert [a.id for a in store.actions("r")] == ["0", "0.0", "0.1", "0.1.0", "0.1.9", "0.1.10", "0.2", "0.10", "0.11"]
    assert store.actions("missing") == []


def test_natural_key_tolerates_non_numeric_components() -> None:
    assert sorted(["0.b", "0.10", "0.a", "0.9"], key=_records.natural_key) == ["0.9", "0.10", "0.a", "0.b"]


def test_runs_newest_first_with_limit(store: RecordStore) -> None:
    for i in range(5):
        store.write(RunRecord(f"run-{i}", "main", created=1000.0 + (i * 7) % 5), [])  # written out of time order

    assert [r.id for r in store.runs()] == ["run-2", "run-4", "run-1", "run-3", "run-0"]
    assert [r.id for r in store.runs(limit=2)] == ["run-2", "run-4"]


def test_run_accepts_a_unique_prefix(store: RecordStore) -> None:
    for rid in ("abc123", "abd456", "x_1", "x%2"):
        store.write(RunRecord(rid, "main"), [])

    found = store.run("abc")
    assert found is not None
    assert found.id == "abc123"
    assert store.run("abd456") is not None
    assert store.run("ab") is None  # ambiguous
    assert sorted(store.run_ids("ab")) == ["abc123", "abd456"]
    assert store.run("zzz") is None
    assert store.run("") is None
    # What the user typed is matched literally: SQL wildcards in it match nothing else.
    assert store.run("x_") is not None
    assert store.run("%") is None
    assert store.run("a%") is None


def test_logs_of_one_action_and_of_all(store: RecordStore) -> None:
    store.write(
        RunRecord("r", "main"),
        [
            ActionRecord("r", "0", None, "main", "v", logs=["root says hi\n"]),
            ActionRecord("r", "0.0", "0", "quiet", "v"),
            ActionRecord("r", "0.10", "0", "late", "v", logs=["no newline"]),
            ActionRecord("r", "0.2", "0", "chatty", "v", logs=["a", "b\n", "c\n"]),
        ],
    )

    assert store.logs("r", "0.2") == "ab\nc\n"
    assert store.logs("r", "0.0") == ""
    assert store.logs("r", "nope") == ""
    assert store.logs("r") == ("== 0 main ==\nroot says hi\n== 0.2 chatty ==\nab\nc\n== 0.10 late ==\nno newline\n")
    assert store.logs("missing") == ""


def test_schema_is_versioned_and_data_survives_reopening(db: Path) -> None:
    with RecordStore(db) as first:
        first.write(full_run(), [full_action()])
    with RecordStore(db) as second:
        assert second.run("r-1") == full_run()

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _records.SCHEMA_VERSION >= 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_a_newer_schema_is_refused(db: Path) -> None:
    RecordStore(db).close()
    conn = sqlite3.connect(db)
    try:
        conn.execute(f"PRAGMA user_version = {_records.SCHEMA_VERSION + 1}")
        conn.commit()
    finally:
        conn.close()

    with pytest.raises(FlytelikeError, match="newer than this flytelike"):
        RecordStore(db)


def test_a_failed_write_leaves_nothing_half_written(store: RecordStore) -> None:
    bad = ActionRecord("r", "0.1", "0", "t", "v")
    bad.attempts = object()  # type: ignore[assignment]  # sqlite3 cannot bind it
    with pytest.raises(sqlite3.ProgrammingError):
        store.write(RunRecord("r", "main"), [ActionRecord("r", "0", None, "t", "v"), bad])

    assert store.run("r") is None
    assert store.actions("r") == []
    store.write(RunRecord("r", "main"), [])  # and the store is still usable
    assert store.run("r") is not None


def test_close_is_idempotent_and_closes(db: Path) -> None:
    store = RecordStore(db)
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.runs()


def test_writing_10000_actions_in_one_call(store: RecordStore) -> None:
    run = RunRecord("big", "main", actions=10_001)
    actions = [
        ActionRecord(
            "big",
            f"0.{i}",
            "0",
            "train",
            "v1",
            state=ActionState.SUCCEEDED,
            attempts=1,
            started=1.0,
            ended=2.0,
            cpu_millis=500,
            memory=1024**3,
            peak_memory=10**8,
            cpu_time=0.5,
            logs=[f"line {i}\n"],
        )
        for i in range(10_000)
    ]
    timings = []
    for _ in range(3):  # first insert, then two full upserts of the same actions
        start = time.perf_counter()
        store.write(run, actions)
        timings.append((time.perf_counter() - start) * 1000)
    print(f"\nwrite of 10,000 actions: {', '.join(f'{t:.1f}' for t in timings)} ms (insert, upsert, upsert)")

    start = time.perf_counter()
    back = store.actions("big")
    print(f"read of 10,000 actions: {(time.perf_counter() - start) * 1000:.1f} ms")
    assert len(back) == 10_000
    assert [a.id for a in back[:3]] == ["0.0", "0.1", "0.2"]
    assert back[-1].id == "0.9999"


def test_readers_see_commits_while_a_run_writes_from_another_thread(db: Path) -> None:
    writer = RecordStore(db)
    reader = RecordStore(db)
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def write() -> None:
        try:
            run = RunRecord("live", "main")
            for batch in range(40):
                run.actions = (batch + 1) * 50
                writer.write(run, [ActionRecord("live", f"0.{batch}.{i}", "0", "t", "v") for i in range(50)])
        except BaseException as e:  # reported on the main thread
            errors.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    try:
        thread.start()
        while not done.is_set():
            seen.append(len(reader.actions("live")))
            reader.runs()
        thread.join()
    finally:
        writer.close()
        reader.close()

    assert errors == []
    assert seen == sorted(seen)  # every read saw a whole commit, and never went back in time
    with RecordStore(db) as after:
        assert len(after.actions("live")) == 2000


def test_an_open_reader_does_not_block_a_write(store: RecordStore, db: Path) -> None:
    store.write(RunRecord("r", "main"), [ActionRecord("r", "0", None, "t", "v")])
    reader = sqlite3.connect(db, isolation_level=None, timeout=0.1)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM actions").fetchone()[0] == 1  # holds a read snapshot

        # With a rollback journal this write would wait for the reader's lock and then fail; in WAL it commits.
        thread = threading.Thread(
            target=store.write, args=(RunRecord("r", "main"), [ActionRecord("r", "0.0", "0", "t", "v")])
        )
        thread.start()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert reader.execute("SELECT count(*) FROM actions").fetchone()[0] == 1  # its snapshot is unchanged
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM actions").fetchone()[0] == 2
    finally:
        reader.close()
    assert len(store.actions("r")) == 2


def test_one_store_shared_between_threads(store: RecordStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                store.write(RunRecord(f"t{n}", "main"), [ActionRecord(f"t{n}", f"0.{i}", "0", "t", "v")])
                store.actions(f"t{n}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(store.actions(f"t{n}")) for n in range(4)) == [30, 30, 30, 30]


# --- the cache -----------------------------------------------------------------------------------------------------


def test_cache_get_put_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite3"
    with CacheStore(path) as cache:
        assert cache.get("k") is None

        before = time.time()
        cache.put("k", b"\x00first")
        got = cache.get("k")
        assert got is not None
        data, stored = got
        assert data == b"\x00first"
        assert isinstance(data, bytes)
        assert before <= stored <= time.time()

        time.sleep(0.01)
        cache.put("k", b"second")
        replaced = cache.get("k")
        assert replaced is not None
        assert replaced[0] == b"second"
        assert replaced[1] > stored
        assert cache.get("other") is None

    with CacheStore(path) as reopened:
        assert reopened.get("k") == replaced


def test_cache_and_records_can_share_a_directory(tmp_path: Path) -> None:
    with RecordStore(tmp_path / "runs.sqlite3") as records, CacheStore(tmp_path / "cache.sqlite3") as cache:
        cache.put("k", b"v")
        records.write(RunRecord("r", "main"), [])
        assert records.run("r") is not None
        assert cache.get("k") is not None
