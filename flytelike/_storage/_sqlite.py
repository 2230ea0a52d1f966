"""One SQLite file in WAL mode, versioned by ``PRAGMA user_version`` and migrated forward on open, shared between
threads behind a lock. The run records and the output cache are each one such file.

A file that cannot be opened or written (disk full, read-only file or directory, locked by another process for
longer than the timeout) raises one :class:`~flytelike.errors.RecordWriteError` naming the file and the cause; the
transaction is rolled back first, so the file keeps what it held and a later write works once the cause is gone.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Self

from flytelike.errors import FlytelikeError, RecordWriteError

__all__ = ["BUSY_TIMEOUT", "SQLiteFile", "connect", "rollback", "write_error"]

# Seconds to wait for another process's write lock (a second run, or a CLI reader upgrading the schema) before a
# write fails with "database is locked".
BUSY_TIMEOUT = 10.0


class SQLiteFile:
    """An open database file; ``migrations[i]`` takes its schema from version i to i + 1."""

    def __init__(self, path: Path, migrations: Sequence[Sequence[str]], *, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._lock = threading.Lock()
        self._conn = connect(self.path, migrations, what=what)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside ``BEGIN IMMEDIATE``, committed on exit; on any error rolled back, and an error from
        the file's surroundings (disk, permissions, locks) re-raised as :class:`RecordWriteError`. Holds the lock
        throughout."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                # If ROLLBACK fails too, SQLite has already rolled back a transaction it could not continue (a full
                # disk, an I/O error); the error worth reporting is the first one.
                with suppress(sqlite3.Error):
                    rollback(conn)
                if _environmental(e):
                    raise write_error(self.path, self.what, e, doing="write") from e
                raise

    def close(self) -> None:
        """Close the connection (idempotent); the store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def connect(path: Path, migrations: Sequence[Sequence[str]], *, what: str) -> sqlite3.Connection:
    """Open (creating it and its directory if needed) a WAL-mode SQLite database at ``path`` and migrate it.

    The connection is in autocommit mode (transactions are explicit) and may be used from any thread: callers
    serialise access with their own lock. ``what`` names the file in errors.

    Raises:
        FlytelikeError: the file was written by a newer flytelike (its schema version is unknown here).
        RecordWriteError: the file or its directory cannot be created, opened or migrated.
    """
    try:
        if path.parent.exists() and not path.parent.is_dir():
            # mkdir would say "File exists", which reads as if nothing were wrong.
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent))
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    except (sqlite3.OperationalError, OSError) as e:
        raise write_error(path, what, e, doing="open") from e
    try:
        _use_wal(conn)
        # NORMAL is durable against process crashes in WAL mode; only a power loss can drop the last commits,
        # which for run records is an acceptable price for not syncing twice a second.
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, migrations, path, what)
    except BaseException as e:
        conn.close()
        if _environmental(e):
            raise write_error(path, what, e, doing="open") from e
        raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (a property of the file, so usually it is already).

    Switching needs the file to itself, and SQLite does not wait for that on this pragma the way it waits for
    other locks: two processes (or two runs in one) opening a new file at the same moment would see "database is
    locked". So it is tried again until the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _environmental(error: BaseException) -> bool:
    """Whether an error comes from the file's surroundings (full disk, permissions, locks, a damaged file) rather
    than from a bug in the caller (a value SQLite cannot bind, a closed connection), which is left as it is."""
    return isinstance(error, sqlite3.OperationalError | OSError) or type(error) is sqlite3.DatabaseError


def write_error(path: Path, what: str, error: BaseException, *, doing: str) -> RecordWriteError:
    """The error for a failed open or write of ``what`` at ``path``: one line naming the file and the cause."""
    if isinstance(error, OSError) and error.strerror:
        # "[Errno 20] Not a directory: '/x/y'" says less than the strerror with the path it concerns.
        cause = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        cause = str(error) or type(error).__name__
    message = f"cannot {doing} the {what} {path}: {cause}"
    if _damaged(error):
        message += (
            f"; the file is damaged: move it aside (mv {path} {path}.corrupt) and a new one is made on the next "
            "run (what the old file held stays in the moved copy)"
        )
    return RecordWriteError(message, path=str(path), cause=cause)


def _damaged(error: BaseException) -> bool:
    """SQLite's words for a file that is not (or no longer) a database: SQLITE_NOTADB and SQLITE_CORRUPT."""
    text = str(error)
    return isinstance(error, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    )


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]], path: Path, what: str) -> None:
    target = len(migrations)
    if _version(conn) == target:
        return
    # IMMEDIATE takes the write lock first, so two processes opening a new file do not both create the tables;
    # the version is read again under the lock for the same reason.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)
        if version > target:
            raise FlytelikeError(
                f"{what} {path} has schema version {version}, newer than this flytelike understands ({target}); "
                "upgrade flytelike or point FLYTELIKE_HOME elsewhere"
            )
        for step in migrations[version:]:
            # execute() per statement, not executescript(), which would commit halfway through.
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    # A failed COMMIT can leave the transaction open, and the next BEGIN would then fail too.
    if conn.in_transaction:
        conn.execute("ROLLBACK")
