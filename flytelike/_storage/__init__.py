"""Storage: run records and the local output cache (SQLite under ``$FLYTELIKE_HOME``), task output spooled to
log files (``$FLYTELIKE_HOME/logs``), and the blob store
(``file://`` or ``s3://``) that carries bundles, inputs, outputs and data to tasks running elsewhere."""

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
from flytelike._storage._spool import AttemptLog, LogSpool, attempt_logs

__all__ = [
    "LOST_AFTER",
    "SCHEMES",
    "AttemptKeys",
    "AttemptLog",
    "BlobStore",
    "CacheStore",
    "FileStore",
    "KeyLock",
    "LogSpool",
    "RecordStore",
    "S3Options",
    "S3Store",
    "attempt_logs",
    "attempt_prefix",
    "bundle_key",
    "data_key",
    "download_refs",
    "has_blobs",
    "inputs_key",
    "is_immutable",
    "key_digest",
    "open_store",
    "pin_local",
    "upload_refs",
    "validate_key",
]
