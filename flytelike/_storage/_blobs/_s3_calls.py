"""What the S3 store's calls share: its options, the AWS modules (imported on first use), which failures are
retried, and how a failure becomes a :class:`~flytelike.errors.StoreError` naming the bucket and the key."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from flytelike.errors import BlobNotFoundError, SpecError, StoreError

__all__ = ["THROTTLING", "S3Options", "aws", "first_error", "retryable", "snake", "translate"]

MiB = 1 << 20
# Error codes S3 and S3-compatible servers use for "slow down"; retried like any 5xx.
THROTTLING = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
    }
)
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True, slots=True)
class S3Options:
    """How an :class:`S3Store` talks to S3.

    Attributes:
        part_size: bytes per part of a multipart upload (S3 wants at least 5 MiB, except for the last part).
        multipart_threshold: objects larger than this are uploaded in parts.
        part_concurrency: parts in flight at once (each held in memory while it is sent).
        concurrency: requests in flight at once for ``missing`` (and the client's connection pool).
        list_page_size: keys per ``ListObjectsV2`` page (S3 gives at most 1000).
        max_attempts: tries of each request, the first included, before a retryable failure is raised.
        backoff: the longest wait before the first retry, in seconds; it doubles with each retry ...
        max_backoff: ... up to this. Each wait is drawn uniformly below it (full jitter).
        region: the AWS region; None: as botocore finds it (``AWS_REGION``, ``~/.aws/config``).
        connect_timeout: seconds to connect.
        read_timeout: seconds to wait for a response's bytes.
    """

    part_size: int = 8 * MiB
    multipart_threshold: int = 8 * MiB
    part_concurrency: int = 4
    concurrency: int = 16
    max_attempts: int = 8
    list_page_size: int = 1000
    backoff: float = 0.1
    max_backoff: float = 10.0
    region: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name, minimum in (
            ("part_size", 5 * MiB),
            ("part_concurrency", 1),
            ("concurrency", 1),
            ("max_attempts", 1),
            ("list_page_size", 1),
        ):
            if getattr(self, name) < minimum:
                raise SpecError(f"S3Options.{name}", getattr(self, name), f"must be at least {minimum}")


@functools.cache
def aws() -> SimpleNamespace:
    """aioboto3 and the botocore classes the store needs, imported on first use (they cost ~200 ms)."""
    import aioboto3
    import aiohttp
    import botocore.exceptions
    from aiobotocore.config import AioConfig

    transient = (
        botocore.exceptions.HTTPClientError,
        botocore.exceptions.ConnectionError,
        botocore.exceptions.ResponseStreamingError,
        aiohttp.ClientError,
        TimeoutError,
    )
    return SimpleNamespace(
        Session=aioboto3.Session, Config=AioConfig, ClientError=botocore.exceptions.ClientError, transient=transient
    )


def retryable(e: BaseException) -> bool:
    """Throttling, 429, 5xx and connection errors are retried; any other 4xx is not."""
    modules = aws()
    if isinstance(e, modules.ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = e.response.get("Error", {}).get("Code", "")
        return code in THROTTLING or status == 429 or status >= 500
    return isinstance(e, modules.transient)


def translate(e: BaseException, *, op: str, bucket: str, obj: str, key: str, attempts: int) -> StoreError:
    """The StoreError for ``e``, a failure of ``op`` on object ``obj`` (store key ``key``) of ``bucket``."""
    url = f"s3://{bucket}/{obj}"
    where = f"s3 bucket {bucket!r}, key {obj!r}"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(e, aws().ClientError):
        error: dict[str, Any] = e.response.get("Error", {})
        code = error.get("Code", "") or "error"
        message = error.get("Message", "") or ""
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        cause = f"{code}: {message}" if message else code
        if code in _NOT_FOUND:
            return BlobNotFoundError(f"{where}: no such object", url=url, key=key, cause=cause)
        if code == "NoSuchBucket":
            return StoreError(f"{where}: the bucket does not exist", url=url, key=key, cause=cause)
        return StoreError(f"{where}: {op} failed{tries}: {cause} (HTTP {status})", url=url, key=key, cause=cause)
    cause = f"{type(e).__name__}: {e}"
    return StoreError(f"{where}: {op} failed{tries}: {cause}", url=url, key=key, cause=cause)


@contextlib.asynccontextmanager
async def first_error() -> AsyncIterator[None]:
    """A task group's StoreError raised as itself: the other tasks were cancelled because of it."""
    try:
        yield
    except BaseExceptionGroup as group:
        first = _store_error(group)
        if first is None:
            raise
        raise first from None


def _store_error(group: BaseExceptionGroup[BaseException]) -> StoreError | None:
    for e in group.exceptions:
        found = _store_error(e) if isinstance(e, BaseExceptionGroup) else e
        if isinstance(found, StoreError):
            return found
    return None


@functools.cache
def snake(op: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_")
