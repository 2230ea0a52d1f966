"""The ``s3://bucket/prefix`` blob store, through aioboto3 (one client per store, created on first use).

aioboto3 and botocore are imported when the first request is made, never by ``import flytelike`` or a local run.
botocore's own retries are off: each call is retried here, with exponential backoff and full jitter, on throttling
(``SlowDown``, ``Throttling``, HTTP 429/503), 5xx and connection errors, and never on other 4xx (``NoSuchKey``,
``AccessDenied``), which end in a :class:`~flytelike.errors.StoreError` naming the bucket and the key. Objects above
``multipart_threshold`` go up in parts; a failed or cancelled multipart upload is aborted, leaving nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.to_thread

from flytelike._storage._blobs._file import CHUNK, PartialFile
from flytelike._storage._blobs._layout import key_digest, validate_key
from flytelike._storage._blobs._protocol import PathLike, expected_digest, mismatch
from flytelike.errors import BlobNotFoundError, SpecError, StoreError

__all__ = ["S3Options", "S3Store"]

MiB = 1 << 20
T = TypeVar("T")
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
def _aws() -> SimpleNamespace:
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


class S3Store:
    """A :class:`~flytelike._storage.BlobStore` over an S3 bucket (or an S3-compatible server).

    Attributes:
        bucket: the bucket.
        prefix: the key prefix of the store inside the bucket (``""``: the whole bucket).
        requests: HTTP requests sent, by operation (``PutObject``, ``HeadObject`` ...), retries included.

    Args:
        bucket: the bucket name.
        prefix: keys are stored under ``prefix/``.
        endpoint_url: an S3-compatible server (MinIO, moto, Ceph ...); path-style addressing is used with it.
        options: part sizes, concurrency, retries and timeouts.
    """

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, options: S3Options | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = validate_key(prefix.strip("/")) if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.options = options or S3Options()
        self.requests: Counter[str] = Counter()
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._lock = anyio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    # --- names -------------------------------------------------------------------------------------------------

    def _object(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object(key)}"

    # --- the client and its calls ------------------------------------------------------------------------------

    async def _s3(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._closed:
                raise StoreError(f"s3 store s3://{self.bucket}/{self.prefix} is closed", url=f"s3://{self.bucket}")
            if self._client is None:
                aws = _aws()
                o = self.options
                config = aws.Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},  # retried here, with our rules
                    connect_timeout=o.connect_timeout,
                    read_timeout=o.read_timeout,
                    max_pool_connections=max(o.concurrency, o.part_concurrency),
                    s3={"addressing_style": "path"} if self.endpoint_url else None,
                )
                session = aws.Session()
                creator = session.client("s3", endpoint_url=self.endpoint_url, region_name=o.region, config=config)
                client = await self._stack.enter_async_context(creator)
                client.meta.events.register("before-send.s3", self._count)
                self._client = client
        return self._client

    def _count(self, event_name: str = "", **_: Any) -> None:
        self.requests[event_name.rpartition(".")[2]] += 1

    def _retryable(self, e: BaseException) -> bool:
        aws = _aws()
        if isinstance(e, aws.ClientError):
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = e.response.get("Error", {}).get("Code", "")
            return code in THROTTLING or status == 429 or status >= 500
        return isinstance(e, aws.transient)

    async def _retrying(self, op: str, key: str, attempt: Callable[[Any], Awaitable[T]]) -> T:
        """``attempt(client)`` until it succeeds, a non-retryable error, or ``max_attempts``; errors translated."""
        client = await self._s3()
        o = self.options
        for n in range(1, o.max_attempts + 1):
            try:
                return await attempt(client)
            except Exception as e:
                if not self._retryable(e) or n == o.max_attempts:
                    raise self._error(op, key, e, attempts=n) from e
            await anyio.sleep(random.uniform(0, min(o.max_backoff, o.backoff * 2 ** (n - 1))))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, op: str, key: str, **params: Any) -> Any:
        method = _snake(op)
        return await self._retrying(op, key, lambda client: getattr(client, method)(Bucket=self.bucket, **params))

    def _error(self, op: str, key: str, e: BaseException, *, attempts: int) -> StoreError:
        obj = self._object(key) if key else self.prefix
        url = f"s3://{self.bucket}/{obj}"
        where = f"s3 bucket {self.bucket!r}, key {obj!r}"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(e, _aws().ClientError):
            code = e.response.get("Error", {}).get("Code", "") or "error"
            message = e.response.get("Error", {}).get("Message", "") or ""
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            cause = f"{code}: {message}" if message else code
            if code in _NOT_FOUND:
                return BlobNotFoundError(f"{where}: no such object", url=url, key=key, cause=cause)
            if code == "NoSuchBucket":
                return StoreError(f"{where}: the bucket does not exist", url=url, key=key, cause=cause)
            return StoreError(f"{where}: {op} failed{tries}: {cause} (HTTP {status})", url=url, key=key, cause=cause)
        cause = f"{type(e).__name__}: {e}"
        return StoreError(f"{where}: {op} failed{tries}: {cause}", url=url, key=key, cause=cause)

    # --- reads -------------------------------------------------------------------------------------------------

    async def exists(self, key: str) -> bool:
        try:
            await self._call("HeadObject", key, Key=self._object(key))
        except BlobNotFoundError:
            return False
        return True

    async def missing(self, keys: Iterable[str]) -> set[str]:
        by_dir: dict[str, list[str]] = {}
        for key in set(keys):
            by_dir.setdefault(validate_key(key).rpartition("/")[0], []).append(key)
        absent: set[str] = set()
        limiter = anyio.CapacityLimiter(self.options.concurrency)

        async def head(key: str) -> None:
            async with limiter:
                if not await self.exists(key):
                    absent.add(key)

        async with _first_error(), anyio.create_task_group() as tg:
            for directory, group in by_dir.items():
                if len(group) <= 2:  # a listing costs at least as much
                    for key in group:
                        tg.start_soon(head, key)
                else:
                    tg.start_soon(self._missing_by_listing, directory, sorted(group), absent, head)
        return absent

    async def _missing_by_listing(
        self, directory: str, keys: list[str], absent: set[str], head: Callable[[str], Coroutine[Any, Any, None]]
    ) -> None:
        """Lists ``directory`` from just before the first of ``keys`` (sorted) to the last; if the listing runs
        longer than asking for each remaining key would, asks for those instead."""
        names = {self._object(k): k for k in keys}
        ordered = sorted(names)  # S3 lists in UTF-8 byte order, which is code point order
        base = self._object(directory) + "/" if directory else (self.prefix + "/" if self.prefix else "")
        size = self.options.list_page_size
        params: dict[str, Any] = {"Prefix": base, "Delimiter": "/", "StartAfter": ordered[0][:-1], "MaxKeys": size}
        found: set[str] = set()
        pages = 0
        while True:
            page = await self._call("ListObjectsV2", directory, **params)
            pages += 1
            listed = [obj["Key"] for obj in page.get("Contents", [])]
            found.update(k for k in listed if k in names)
            last = listed[-1] if listed else ""
            if not page.get("IsTruncated") or last >= ordered[-1]:
                undecided: list[str] = []
                break
            undecided = [k for k in ordered if k > last]
            if pages >= len(undecided):
                break
            params = {"Prefix": base, "Delimiter": "/", "MaxKeys": size}
            params["ContinuationToken"] = page["NextContinuationToken"]
        absent.update(names[k] for k in ordered if k not in found and k not in undecided)
        async with _first_error(), anyio.create_task_group() as tg:
            for k in undecided:
                tg.start_soon(head, names[k])

    async def get(self, key: str, *, digest: str | None = None) -> bytes:
        expected = expected_digest(key, digest)
        obj = self._object(key)

        async def attempt(client: Any) -> bytes:
            response = await client.get_object(Bucket=self.bucket, Key=obj)
            body = response["Body"]
            async with body:  # releases the connection (its __aenter__ gives the bare aiohttp response)
                data: bytes = await body.read()
            return data

        data = await self._retrying("GetObject", key, attempt)
        if expected is not None:
            actual = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
            if actual != expected:
                raise mismatch(self.url(key), key, expected=expected, actual=actual)
        return data

    async def get_file(self, key: str, path: PathLike, *, digest: str | None = None) -> None:
        expected = expected_digest(key, digest)
        obj = self._object(key)
        target = Path(path)

        async def attempt(client: Any) -> str:
            response = await client.get_object(Bucket=self.bucket, Key=obj)
            partial = await anyio.to_thread.run_sync(functools.partial(PartialFile, target, mkdir=False))
            try:
                body = response["Body"]
                async with body:
                    async for chunk in body.iter_chunks(CHUNK):
                        await anyio.to_thread.run_sync(partial.write, chunk)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(partial.discard)
                raise
            return await anyio.to_thread.run_sync(partial.commit, expected)

        actual = await self._retrying("GetObject", key, attempt)
        if expected is not None and actual != expected:
            raise mismatch(self.url(key), key, expected=expected, actual=actual)

    # --- writes ------------------------------------------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> bool:
        named = key_digest(key)
        if named is not None:
            actual = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
            if actual != named:
                raise mismatch(self.url(key), key, expected=named, actual=actual, what="the data to store")
            if await self.exists(key):
                return False
        view = memoryview(data)

        async def read(offset: int, size: int) -> bytes:
            return bytes(view[offset : offset + size])

        await self._upload(key, len(data), read)
        return True

    async def put_file(self, key: str, path: PathLike) -> bool:
        source = Path(path)
        named = key_digest(key)
        try:
            size = (await anyio.to_thread.run_sync(source.stat)).st_size
            if named is not None:
                actual = await anyio.to_thread.run_sync(_file_sha256, source)
                if actual != named:
                    raise mismatch(self.url(key), key, expected=named, actual=actual, what=f"the file {source}")
        except OSError as e:
            raise StoreError(
                f"{self.url(key)}: cannot read the file to store, {source}: {e.strerror or e}",
                url=self.url(key),
                key=key,
                cause=str(e.strerror or e),
            ) from e
        if named is not None and await self.exists(key):
            return False
        fd = await anyio.to_thread.run_sync(os.open, source, os.O_RDONLY)
        try:

            async def read(offset: int, size: int) -> bytes:
                return await anyio.to_thread.run_sync(os.pread, fd, size, offset)

            await self._upload(key, size, read)
        finally:
            os.close(fd)
        return True

    async def _upload(self, key: str, size: int, read: Callable[[int, int], Awaitable[bytes]]) -> None:
        obj = self._object(key)
        if size <= self.options.multipart_threshold:
            data = await read(0, size)
            await self._call("PutObject", key, Key=obj, Body=data)
            return
        created = await self._call("CreateMultipartUpload", key, Key=obj)
        upload_id = created["UploadId"]
        part_size = self.options.part_size
        count = -(-size // part_size)
        etags: list[str] = [""] * count
        limiter = anyio.CapacityLimiter(self.options.part_concurrency)

        async def part(number: int) -> None:
            async with limiter:
                data = await read((number - 1) * part_size, part_size)
                sent = await self._call("UploadPart", key, Key=obj, UploadId=upload_id, PartNumber=number, Body=data)
                etags[number - 1] = sent["ETag"]

        try:
            async with _first_error(), anyio.create_task_group() as tg:
                for number in range(1, count + 1):
                    tg.start_soon(part, number)
            parts = [{"ETag": etag, "PartNumber": i} for i, etag in enumerate(etags, 1)]
            await self._call(
                "CompleteMultipartUpload", key, Key=obj, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Parts of an upload that is neither completed nor aborted are kept (and billed) by S3 forever.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self._call("AbortMultipartUpload", key, Key=obj, UploadId=upload_id)
            raise

    async def delete(self, key: str) -> None:
        await self._call("DeleteObject", key, Key=self._object(key))

    # --- lifetime ----------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            self._client = None
            await self._stack.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def _first_error() -> AsyncIterator[None]:
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


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.cache
def _snake(op: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_")
