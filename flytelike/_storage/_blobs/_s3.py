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
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.to_thread

from flytelike._storage._blobs._file import CHUNK, PartialFile
from flytelike._storage._blobs._layout import is_immutable, key_digest, validate_key
from flytelike._storage._blobs._protocol import PathLike, expected_digest, mismatch
from flytelike._storage._blobs._s3_calls import S3Options, aws, first_error, retryable, snake, translate
from flytelike.errors import BlobNotFoundError, StoreError

__all__ = ["S3Options", "S3Store"]

T = TypeVar("T")
ABORT_TIMEOUT = 60.0  # seconds an abort of a failed multipart upload may take, retries included


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
        self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None, options: S3Options | None = None
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
        return f"S3Store({self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r})"

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
                modules = aws()
                o = self.options
                config = modules.Config(
                    # What botocore signs requests with anyway; named because presigned URLs would be SigV2
                    # otherwise, which S3 refuses in newer regions.
                    signature_version="s3v4",
                    retries={"total_max_attempts": 1, "mode": "standard"},  # retried here, with our rules
                    connect_timeout=o.connect_timeout,
                    read_timeout=o.read_timeout,
                    max_pool_connections=max(o.concurrency, o.part_concurrency),
                    s3={"addressing_style": "path"} if self.endpoint_url else None,
                )
                session = modules.Session()
                creator = session.client("s3", endpoint_url=self.endpoint_url, region_name=o.region, config=config)
                client = await self._stack.enter_async_context(creator)
                client.meta.events.register("before-send.s3", self._count)
                self._client = client
        return self._client

    def _count(self, event_name: str = "", **_: Any) -> None:
        self.requests[event_name.rpartition(".")[2]] += 1

    async def _retrying(self, op: str, key: str, attempt: Callable[[Any], Awaitable[T]]) -> T:
        """``attempt(client)`` until it succeeds, a non-retryable error, or ``max_attempts``; errors translated."""
        client = await self._s3()
        o = self.options
        for n in range(1, o.max_attempts + 1):
            try:
                return await attempt(client)
            except Exception as e:
                if not retryable(e) or n == o.max_attempts:
                    raise self._error(op, key, e, attempts=n) from e
            await anyio.sleep(random.uniform(0, min(o.max_backoff, o.backoff * 2 ** (n - 1))))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, op: str, key: str, **params: Any) -> Any:
        method = snake(op)
        return await self._retrying(op, key, lambda client: getattr(client, method)(Bucket=self.bucket, **params))

    def _error(self, op: str, key: str, e: BaseException, *, attempts: int) -> StoreError:
        obj = self._object(key) if key else self.prefix
        return translate(e, op=op, bucket=self.bucket, obj=obj, key=key, attempts=attempts)

    async def exists(self, key: str) -> bool:
        try:
            await self._call("HeadObject", key, Key=self._object(key))
        except BlobNotFoundError:
            return False
        return True

    async def _size(self, key: str) -> int | None:
        try:
            head = await self._call("HeadObject", key, Key=self._object(key))
        except BlobNotFoundError:
            return None
        return int(head["ContentLength"])

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

        async with first_error(), anyio.create_task_group() as tg:
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
            # How far the page got: its last key, or its last subdirectory (rolled up by the delimiter).
            last = max([*listed[-1:], *(p["Prefix"] for p in page.get("CommonPrefixes", [])[-1:])], default="")
            if not page.get("IsTruncated") or last >= ordered[-1]:
                undecided: list[str] = []
                break
            undecided = [k for k in ordered if k > last]
            if pages >= len(undecided):
                break
            params = {"Prefix": base, "Delimiter": "/", "MaxKeys": size}
            params["ContinuationToken"] = page["NextContinuationToken"]
        absent.update(names[k] for k in ordered if k not in found and k not in undecided)
        async with first_error(), anyio.create_task_group() as tg:
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
        if is_immutable(key) and await self._stored(key):
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
        if is_immutable(key) and await self._stored(key):
            return False
        fd = await anyio.to_thread.run_sync(os.open, source, os.O_RDONLY)
        try:

            async def read(offset: int, size: int) -> bytes:
                return await anyio.to_thread.run_sync(os.pread, fd, size, offset)

            await self._upload(key, size, read)
        finally:
            os.close(fd)
        return True

    async def _stored(self, key: str) -> bool:
        """Whether a content-addressed object is stored; without s3:ListBucket, S3 answers a HEAD of a missing
        object with 403, which means "upload it" here (a put of the same content is harmless)."""
        try:
            return await self.exists(key)
        except StoreError as e:
            if e.cause.split(":")[0] in ("403", "AccessDenied", "Forbidden"):
                return False
            raise

    async def _upload(self, key: str, size: int, read: Callable[[int, int], Awaitable[bytes]]) -> None:
        obj = self._object(key)
        if size <= self.options.multipart_threshold:
            data = await read(0, size)
            await self._call("PutObject", key, Key=obj, Body=data)
            return
        with anyio.CancelScope(shield=True):  # an upload created unbeknown to us could never be aborted
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
            async with first_error(), anyio.create_task_group() as tg:
                for number in range(1, count + 1):
                    tg.start_soon(part, number)
            parts = [{"ETag": etag, "PartNumber": i} for i, etag in enumerate(etags, 1)]
            try:
                await self._call(
                    "CompleteMultipartUpload", key, Key=obj, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except StoreError as e:
                # A completion that succeeded although its response was lost (5xx, a dropped connection) makes the
                # retry fail with NoSuchUpload: the object is there, with this size.
                if not e.cause.startswith("NoSuchUpload") or await self._size(key) != size:
                    raise
        except BaseException:
            # Parts of an upload that is neither completed nor aborted are kept (and billed) by S3 forever; the
            # abort runs even when the upload was cancelled, for a bounded time.
            with anyio.CancelScope(shield=True), anyio.move_on_after(ABORT_TIMEOUT), contextlib.suppress(Exception):
                await self._call("AbortMultipartUpload", key, Key=obj, UploadId=upload_id)
            raise

    async def presigned_put(self, key: str, *, size: int, expires_in: int) -> str:
        """A URL whose holder may PUT ``size`` bytes under ``key`` for ``expires_in`` seconds, and nothing else.

        The URL is signed here (no request is sent) with SigV4 over its ``Content-Length``, so S3 refuses a body of
        any other size; the PUT must send that header.
        """
        client = await self._s3()
        params = {"Bucket": self.bucket, "Key": self._object(key), "ContentLength": size}
        try:
            url: str = await client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        except Exception as e:  # a botocore error (no credentials, a bad parameter): our error, naming the key
            raise self._error("PresignPutObject", key, e, attempts=1) from e
        return url

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


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
