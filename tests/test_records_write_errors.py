"""A record write that fails raises one RecordWriteError naming the file and the cause, rolls back, and leaves the
file intact, so a later write works once the cause is gone.

The tests run as root, which bypasses file permissions, so each failure is made real by other means: a size limit
on the database (a full disk), a read-only connection, a lock held by another connection, a directory that is a
file, a file that is not a database. Nothing is mocked: SQLite itself refuses each write.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage import CacheStore, RecordStore
from flytelike.errors import FlytelikeError, RecordWriteError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "records" / "runs.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[RecordStore]:
    with RecordStore(db) as s:
        s.write(RunRecord("r", "main", RunState.SUCCEEDED, ended=1.0), [ActionRecord("r", "0", None, "main", "v1")])
        yield s


def big_write(store: RecordStore, run_id: str = "big") -> None:
    actions = [ActionRecord(run_id, f"0.{i}", "0", "t", "v", logs=["x" * 2000]) for i in range(200)]
    events = [Event(run_id, i + 1, f"0.{i}", "running", 1, 1.0) for i in range(200)]
    store.write(RunRecord(run_id, "main"), actions, events)


def assert_intact(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM runs WHERE id = 'big'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM actions WHERE run_id = 'big'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM events WHERE run_id = 'big'").fetchone()[0] == 0


def assert_later_write_works(store: RecordStore) -> None:
    big_write(store)
    assert len(store.actions("big")) == 200
    assert len(store.events("big")) == 200


def test_a_full_disk_fails_the_write_clearly_and_rolls_it_back(store: RecordStore, db: Path) -> None:
    # max_page_count caps the file at its current size: the next page SQLite needs is refused as SQLITE_FULL,
    # exactly what a full disk gives.
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(RecordWriteError) as caught:
        big_write(store)

    e = caught.value
    assert str(e) == f"cannot write the run records {db}: database or disk is full"
    assert (e.path, e.cause) == (str(db), "database or disk is full")
    assert isinstance(e.__cause__, sqlite3.OperationalError)
    assert not store._conn.in_transaction
    assert store.run("big") is None
    assert store.run("r") is not None  # what was there before is still there
    assert_intact(db)

    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert_later_write_works(store)


def test_a_read_only_database_fails_the_write_clearly(store: RecordStore, db: Path) -> None:
    store._conn.execute("PRAGMA query_only = ON")
    with pytest.raises(RecordWriteError, match=r"^cannot write the run records .*: attempt to write a readonly"):
        big_write(store)
    store._conn.execute("PRAGMA query_only = OFF")
    assert_intact(db)
    assert_later_write_works(store)


def test_a_read_only_file_fails_the_write_clearly(store: RecordStore, db: Path) -> None:
    # The file opened read-only, as SQLite opens a file it may not write (a read-only home or file).
    writable = store._conn
    store._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    try:
        with pytest.raises(RecordWriteError) as caught:
            big_write(store)
        assert str(caught.value).startswith(f"cannot write the run records {db}: attempt to write a readonly database")
        assert store.run("r") is not None  # reading still works
    finally:
        store._conn.close()
        store._conn = writable
    assert_intact(db)
    assert_later_write_works(store)


def test_a_database_locked_beyond_the_timeout_fails_the_write_clearly(store: RecordStore, db: Path) -> None:
    store._conn.execute("PRAGMA busy_timeout = 100")  # the real timeout is 10 s; the behaviour is the same
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    try:
        with pytest.raises(RecordWriteError, match=r"^cannot write the run records .*: database is locked$"):
            big_write(store)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert_intact(db)
    assert_later_write_works(store)


def test_an_unwritable_directory_fails_opening_clearly(tmp_path: Path) -> None:
    # A home whose parent is a file cannot be created, whoever runs the test.
    (tmp_path / "afile").write_text("")
    path = tmp_path / "afile" / "home" / "runs.sqlite3"
    with pytest.raises(RecordWriteError) as caught:
        RecordStore(path)
    assert str(caught.value) == f"cannot open the run records {path}: Not a directory: {tmp_path / 'afile' / 'home'}"
    assert caught.value.path == str(path)


def test_a_file_that_is_not_a_database_fails_opening_clearly(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not SQLite" * 100)
    damaged = r"^cannot open the run records .*: file is not a database; the file is damaged: move it aside \(mv "
    with pytest.raises(RecordWriteError, match=damaged):
        RecordStore(db)
    assert db.read_bytes() == b"this is not SQLite" * 100  # left alone


def test_the_cache_file_names_itself_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(RecordWriteError, match=r"^cannot open the cache .*cache\.sqlite3: Not a directory"):
        CacheStore(tmp_path / "afile" / "cache.sqlite3")


def test_the_error_is_a_flytelike_error_and_survives_pickling() -> None:
    e = RecordWriteError("cannot write the run records /x: database or disk is full", path="/x", cause="full")
    assert isinstance(e, FlytelikeError)
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), str(back), back.path, back.cause) == (RecordWriteError, str(e), "/x", "full")


def test_a_bug_in_the_caller_is_not_reported_as_a_write_error(store: RecordStore) -> None:
    # A value SQLite cannot bind is a programming error, not the disk's fault: it stays what it is.
    bad = ActionRecord("r", "0.1", "0", "t", "v", ActionState.RUNNING)
    bad.memory = object()  # type: ignore[assignment]
    with pytest.raises(sqlite3.ProgrammingError):
        store.write(RunRecord("r", "main"), [bad])
