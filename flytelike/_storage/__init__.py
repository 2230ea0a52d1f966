"""Storage: run records and the local output cache (SQLite under ``$FLYTELIKE_HOME``), task output spooled to
log files (``$FLYTELIKE_HOME/logs``), and the blob store
(``file://`` or ``s3://``) that carries bundles, inputs, outputs and data to tasks running elsewhere.

Names load on first use: reading the run records loads neither the blob stores nor protobuf.
"""

from __future__ import annotations

import importlib

# Not typing's: `flytelike runs` imports this package and nothing that needs typing (see _run_query).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from flytelike._storage._blobs import (
        SCHEMES,
        AttemptKeys,
        BlobStore,
        FileStore,
        S3Options,
        S3Store,
        attempt_prefix,
        bundle_key,
        data_key,
        inputs_key,
        is_immutable,
        key_digest,
        open_store,
        validate_key,
    )
    from flytelike._storage._cache import CacheStore, KeyLock
    from flytelike._storage._liveness import LOST_AFTER
    from flytelike._storage._records import RecordStore
    from flytelike._storage._refs import download_refs, has_blobs, pin_local, upload_refs
    from flytelike._storage._spool import (
        AttemptLog,
        KeptLog,
        LogSpool,
        RunIndex,
        attempt_logs,
        index_entries,
        kept_logs,
    )

__all__ = [
    "LOST_AFTER",
    "SCHEMES",
    "AttemptKeys",
    "AttemptLog",
    "BlobStore",
    "CacheStore",
    "FileStore",
    "KeptLog",
    "KeyLock",
    "LogSpool",
    "RecordStore",
    "RunIndex",
    "S3Options",
    "S3Store",
    "attempt_logs",
    "attempt_prefix",
    "bundle_key",
    "data_key",
    "download_refs",
    "has_blobs",
    "index_entries",
    "inputs_key",
    "is_immutable",
    "kept_logs",
    "key_digest",
    "open_store",
    "pin_local",
    "upload_refs",
    "validate_key",
]

_MODULES = {
    "AttemptKeys": "flytelike._storage._blobs",
    "AttemptLog": "flytelike._storage._spool",
    "BlobStore": "flytelike._storage._blobs",
    "CacheStore": "flytelike._storage._cache",
    "FileStore": "flytelike._storage._blobs",
    "KeptLog": "flytelike._storage._spool",
    "KeyLock": "flytelike._storage._cache",
    "LOST_AFTER": "flytelike._storage._liveness",
    "LogSpool": "flytelike._storage._spool",
    "RecordStore": "flytelike._storage._records",
    "RunIndex": "flytelike._storage._spool",
    "S3Options": "flytelike._storage._blobs",
    "S3Store": "flytelike._storage._blobs",
    "SCHEMES": "flytelike._storage._blobs",
    "attempt_logs": "flytelike._storage._spool",
    "attempt_prefix": "flytelike._storage._blobs",
    "bundle_key": "flytelike._storage._blobs",
    "data_key": "flytelike._storage._blobs",
    "download_refs": "flytelike._storage._refs",
    "has_blobs": "flytelike._storage._refs",
    "inputs_key": "flytelike._storage._blobs",
    "index_entries": "flytelike._storage._spool",
    "is_immutable": "flytelike._storage._blobs",
    "kept_logs": "flytelike._storage._spool",
    "key_digest": "flytelike._storage._blobs",
    "open_store": "flytelike._storage._blobs",
    "pin_local": "flytelike._storage._refs",
    "upload_refs": "flytelike._storage._refs",
    "validate_key": "flytelike._storage._blobs",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found once: later lookups are plain module attributes
    return value
