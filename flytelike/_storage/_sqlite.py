"""One SQLite file in WAL mode, versioned by ``PRAGMA user_version`` and migrated forward on open, shared between
threads behind a lock. The run records and the output cache are each one such file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from flytelike.errors import FlytelikeError

__all__ = ["SQLiteFile", "connect", "rollback"]


class SQLiteFile:
    """An open database file; ``migrations[i]`` takes its schema from version i to i + 1."""

    def __init__(self, path: Path, migrations: Sequence[Sequence[str]], *, what: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path, migrations, what=what)

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
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # timeout: another process (a second run, or a CLI reader upgrading the schema) may hold the write lock
    # briefly; wait for it rather than fail.
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against process crashes in WAL mode; only a power loss can drop the last commits,
        # which for run records is an acceptable price for not syncing twice a second.
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, migrations, path, what)
    except BaseException:
        conn.close()
        raise
    return conn


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
