"""The blob store: bundles, inputs, outputs and offloaded data by key, in a directory (``file://``) or a bucket
(``s3://``), laid out as design.md §4.3 says. aioboto3 is imported only when an ``s3://`` store sends a request."""

from flytelike._storage._blobs._file import FileStore
from flytelike._storage._blobs._layout import (
    AttemptKeys,
    attempt_prefix,
    bundle_key,
    data_key,
    inputs_key,
    is_immutable,
    key_digest,
    validate_key,
)
from flytelike._storage._blobs._open import SCHEMES, open_store
from flytelike._storage._blobs._protocol import BlobStore
from flytelike._storage._blobs._s3 import S3Options, S3Store

__all__ = [
    "SCHEMES",
    "AttemptKeys",
    "BlobStore",
    "FileStore",
    "S3Options",
    "S3Store",
    "attempt_prefix",
    "bundle_key",
    "data_key",
    "inputs_key",
    "is_immutable",
    "key_digest",
    "open_store",
    "validate_key",
]
