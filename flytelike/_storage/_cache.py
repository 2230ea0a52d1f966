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

import time
from pathlib import Path

from flytelike._storage._sqlite import SQLiteFile

__all__ = ["CacheStore"]

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
        """The stored outputs and the time (epoch seconds) they were stored, or None."""
        with self._lock:
            row = self._conn.execute("SELECT data, stored FROM cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else (bytes(row[0]), float(row[1]))

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` now, replacing what was there (and its time)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO cache (key, data, stored) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data, stored = excluded.stored",
                (key, data, time.time()),
            )
