"""The local output cache: encoded outputs by cache key, with the time they were stored.

A separate file from the run records (the runtime passes ``$FLYTELIKE_HOME/cache.sqlite3``) so that clearing the
cache never touches run history and large cached outputs never bloat the records file.

Example:
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d, CacheStore(pathlib.Path(d) / "cache.sqlite3") as cache:
    ...     cache.put("k", b"outputs")
    ...     data, stored = cache.get("k")
    ...     print(data)
    b'outputs'
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

from flytelike._storage._sqlite import SQLiteFile

__all__ = ["CacheStore", "KeyLock"]


class KeyLock:
    """An exclusive ``flock`` on one file; a second open of the file (in any process) cannot take it meanwhile."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> KeyLock | None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the lock


# See _records._MIGRATIONS: entry i takes the file from schema version i to i + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    ("CREATE TABLE cache (key TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL, stored REAL NOT NULL)",),
)


class CacheStore(SQLiteFile):
    """Implements the executor's ``CacheStore`` over SQLite; safe to share between threads.

    Expiry is the executor's business (it compares the stored time with the task's TTL), so nothing is evicted
    here.

    Args:
        path: the database file; it and its directory are created if missing.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, _MIGRATIONS, what="cache")

    def get(self, key: str) -> tuple[bytes, float] | None:
        """The stored outputs and the time (epoch seconds) they were stored, or None (also for a damaged entry,
        which is a miss: the task runs again and its outputs replace it)."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT data, stored FROM cache WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError:  # a damaged page: this entry cannot be read, the others may
                return None
        if row is None or not isinstance(row[0], bytes) or not isinstance(row[1], int | float):
            return None
        return bytes(row[0]), float(row[1])

    def try_lock(self, key: str) -> KeyLock | None:
        """Hold the computation of ``key`` (``Cache(serialize=True)``), or ``None`` when another action holds it,
        in this process or another one using the same cache file. Released by :meth:`KeyLock.release`, or by the
        system when the process ends."""
        return KeyLock.acquire(self.path.parent / "cache-locks" / f"{key}.lock")

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` now, replacing what was there (and its time)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO cache (key, data, stored) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data, stored = excluded.stored",
                (key, data, time.time()),
            )
