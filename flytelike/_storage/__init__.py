"""Storage: run records and the local output cache (SQLite under ``$FLYTELIKE_HOME``)."""

from flytelike._storage._cache import CacheStore, KeyLock
from flytelike._storage._liveness import LOST_AFTER
from flytelike._storage._records import RecordStore

__all__ = ["LOST_AFTER", "CacheStore", "KeyLock", "RecordStore"]
