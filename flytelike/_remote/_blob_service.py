"""The BlobService of ``flytelike serve``: which objects the store lacks, and uploads checked against their digest.

An upload is received into a temporary file (never held in memory whole) and checked before it reaches the store:
a data object by the sha256 of its bytes, a bundle by verifying the whole archive against its manifest digest (the
same checks as extraction on a task's machine). Nothing that fails a check is stored.

When the store is S3, a client may instead PUT the bytes straight into the bucket at a presigned URL
(``PresignUpload``), then ask the server to accept them (``CommitUpload``). The URL names a staging key,
``uploads/<hex>/<random>``, never the object's own key: the server downloads the staging object, runs the same
checks as for a streamed upload, and writes the copy it verified under the content-addressed key. Why not the
alternatives:

- S3's ``ChecksumSHA256`` on a PUT straight to the final key would let S3 refuse wrong bytes, but a bundle's digest
  is its manifest's, not the archive's sha256, so S3 cannot check a bundle; and S3-compatible servers do not all
  enforce checksums.
- ``CopyObject`` from the staging key after verifying it saves the server one upload, but the presigned URL stays
  valid until it expires: a client could overwrite the staging object between the check and the copy, and an
  ``If-Match`` on the ETag only compares MD5s, which can be made to collide.

So the bytes under a digest key are always bytes the server itself has checked; it pays a download and an upload
inside the cloud, and the client's bytes never cross the server's own connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import anyio
import grpc
import grpc.aio

from flytelike._bundle import extract_bundle
from flytelike._proto.remote.v1 import blobs_pb2, blobs_pb2_grpc
from flytelike._remote._access import Access
from flytelike._storage import BlobStore, S3Store, bundle_key, data_key
from flytelike.errors import BlobNotFoundError, BundleIntegrityError, FlytelikeError, StoreError

__all__ = ["PRESIGN_EXPIRY", "BlobServicer", "blob_key", "staging_key"]

log = logging.getLogger("flytelike.serve")

Context = grpc.aio.ServicerContext[Any, Any]

MAX_UPLOAD = 1 << 30
"""Bytes one upload may hold (a bundle is refused by the client above 500 MB already)."""

PRESIGN_EXPIRY = 900
"""Seconds a presigned URL stays valid: long enough to start a large PUT on a slow link (S3 checks the expiry when
a request starts), short enough that a leaked URL is soon useless."""

_MAX_EXPIRY = 7 * 24 * 3600  # SigV4's limit on a presigned URL
_STAGING = re.compile(r"uploads/(?P<hex>[0-9a-f]{64})/[0-9a-f]{32}")
_STAGING_ACCEPTED = "the staging_key PresignUpload answered for this digest (uploads/<digest hex>/<32 hex digits>)"


def blob_key(ref: blobs_pb2.BlobRef) -> str:
    """The store key of a blob; ValueError naming the field for a bad kind or digest."""
    if ref.kind == blobs_pb2.BLOB_KIND_BUNDLE:
        return bundle_key(ref.digest)
    if ref.kind == blobs_pb2.BLOB_KIND_DATA:
        return data_key(ref.digest)
    raise ValueError(f"blob.kind {ref.kind} is not a blob kind; accepted: BLOB_KIND_BUNDLE, BLOB_KIND_DATA")


def staging_key(digest: str) -> str:
    """A fresh staging key for a presigned upload of ``digest`` (which :func:`blob_key` has validated).

    The random part keeps two clients uploading the same object from writing over each other's staging object.
    """
    return f"uploads/{digest.removeprefix('sha256:')}/{secrets.token_hex(16)}"


def _verify_bundle(path: Path, digest: str, scratch: Path) -> None:
    with path.open("rb") as archive:
        extract_bundle(archive, scratch / "check", digest=digest)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _Leftovers:
    """What an upload in flight leaves behind (its scratch directory, a staging object), removed once.

    gRPC sends the error status at ``context.abort``, before the handler's ``finally`` runs: removing them first
    means a client told "refused" finds nothing left, and a server stopping once the client has its answer finds
    no request of this call still in flight.
    """

    def __init__(self, *steps: Callable[[], Awaitable[None]]) -> None:
        self._steps = steps
        self._done = False

    async def remove(self) -> None:
        if self._done:
            return
        self._done = True
        with anyio.CancelScope(shield=True):
            for step in self._steps:
                await step()

    async def abort(self, context: Context, code: grpc.StatusCode, details: str) -> NoReturn:
        await self.remove()
        await context.abort(code, details)
        raise AssertionError("unreachable: context.abort raises")


class BlobServicer(blobs_pb2_grpc.BlobServiceServicer):
    """BlobService over the server's store.

    Attributes:
        stored: objects written by uploads and commits (the others were there already).
        streamed_bytes: bytes received through ``Upload`` (presigned uploads never add to it).
        presigned: presigned URLs handed out.

    Args:
        store: the server's blob store.
        access: the token checks (the server's token only).
        scratch: a directory for uploads in flight.
        presign_expiry: seconds a presigned URL stays valid; None: hand out none (every upload is streamed).

    Raises:
        ValueError: naming ``presign_expiry``, when it is outside 1 s to 7 days.
    """

    def __init__(
        self, *, store: BlobStore, access: Access, scratch: Path, presign_expiry: int | None = PRESIGN_EXPIRY
    ) -> None:
        if presign_expiry is not None and not 1 <= presign_expiry <= _MAX_EXPIRY:
            raise ValueError(
                f"presign_expiry {presign_expiry!r} is out of range; accepted: 1 to {_MAX_EXPIRY} seconds, or None"
            )
        self._store = store
        self._access = access
        self._scratch = scratch
        self._presign_expiry = presign_expiry
        self.stored = 0
        self.streamed_bytes = 0
        self.presigned = 0

    def _scratch_dir(self) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self._scratch, prefix="upload-"))

    async def _key(self, ref: blobs_pb2.BlobRef, size: int, context: Context, method: str) -> str:
        """The blob's store key; aborts with INVALID_ARGUMENT for a bad ref or a size above the limit."""
        try:
            key = blob_key(ref)
        except (ValueError, StoreError) as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {e}")
            raise
        if size > MAX_UPLOAD:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"{method}: size {size} is above the limit of {MAX_UPLOAD} bytes"
            )
        return key

    async def _store_verified(
        self, context: Context, method: str, ref: blobs_pb2.BlobRef, path: Path, sha256: str, leftovers: _Leftovers
    ) -> bool:
        """Check the file at ``path`` (whose sha256 is ``sha256``) against ``ref``, then store it under its key;
        True if written. A refusal aborts the call with INVALID_ARGUMENT, a store failure with UNAVAILABLE, each
        after removing ``leftovers``."""
        digest = ref.digest
        try:
            if ref.kind == blobs_pb2.BLOB_KIND_BUNDLE:
                await anyio.to_thread.run_sync(_verify_bundle, path, digest, path.parent)
            elif sha256 != digest.removeprefix("sha256:"):
                raise StoreError(f"its content has sha256 {sha256}, not {digest}")
        except (BundleIntegrityError, StoreError) as e:
            log.warning("refused an upload of %s from %s: %s", digest, context.peer(), e)
            await leftovers.abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{method} of {digest} refused: {e}")
        try:
            return await self._store.put_file(blob_key(ref), path)
        except FlytelikeError as e:
            await leftovers.abort(context, grpc.StatusCode.UNAVAILABLE, f"{method}: the server's store failed: {e}")

    def _answer(self, key: str, stored: bool, size: int) -> blobs_pb2.UploadResponse:
        if stored:
            self.stored += 1
            log.info("stored %s (%d bytes)", key, size)
        return blobs_pb2.UploadResponse(stored=stored, url=self._store.url(key))

    async def FindMissing(  # noqa: N802 (the gRPC method's name)
        self, request: blobs_pb2.FindMissingRequest, context: Context
    ) -> blobs_pb2.FindMissingResponse:
        await self._access.server(context, "FindMissing")
        try:
            keys = [blob_key(ref) for ref in request.blobs]
        except (ValueError, StoreError) as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"FindMissing: {e}")
            raise
        missing = await self._store.missing(keys)
        return blobs_pb2.FindMissingResponse(
            missing=[r for r, k in zip(request.blobs, keys, strict=True) if k in missing]
        )

    async def Upload(  # noqa: N802 (the gRPC method's name)
        self, request_iterator: AsyncIterator[blobs_pb2.UploadRequest], context: Context
    ) -> blobs_pb2.UploadResponse:
        await self._access.server(context, "Upload")
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("item") != "header":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Upload: the first message must be the header")
        assert first is not None
        header = first.header
        key = await self._key(header.blob, header.size, context, "Upload")
        tmp = await anyio.to_thread.run_sync(self._scratch_dir)

        async def remove_scratch() -> None:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)

        leftovers = _Leftovers(remove_scratch)
        try:
            path = tmp / "blob"
            sha = hashlib.sha256()
            size = 0
            async with await anyio.open_file(path, "wb") as out:
                async for message in request_iterator:
                    chunk = message.chunk
                    size += len(chunk)
                    self.streamed_bytes += len(chunk)
                    if size > header.size:
                        await leftovers.abort(
                            context,
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"Upload: more than the {header.size} bytes announced",
                        )
                    sha.update(chunk)
                    await out.write(chunk)
            if size != header.size:
                await leftovers.abort(
                    context, grpc.StatusCode.INVALID_ARGUMENT, f"Upload: {size} bytes received, {header.size} announced"
                )
            stored = await self._store_verified(context, "Upload", header.blob, path, sha.hexdigest(), leftovers)
        finally:
            await leftovers.remove()
        return self._answer(key, stored, size)

    async def PresignUpload(  # noqa: N802 (the gRPC method's name)
        self, request: blobs_pb2.PresignUploadRequest, context: Context
    ) -> blobs_pb2.PresignUploadResponse:
        await self._access.server(context, "PresignUpload")
        await self._key(request.blob, request.size, context, "PresignUpload")
        if self._presign_expiry is None:
            return blobs_pb2.PresignUploadResponse(reason="this server hands out no presigned URLs; use Upload")
        if not isinstance(self._store, S3Store):
            return blobs_pb2.PresignUploadResponse(reason="the server's store is not S3; use Upload")
        staging = staging_key(request.blob.digest)
        try:
            url = await self._store.presigned_put(staging, size=request.size, expires_in=self._presign_expiry)
        except StoreError as e:
            log.warning("could not presign an upload of %s: %s", request.blob.digest, e)
            return blobs_pb2.PresignUploadResponse(reason=f"the server could not presign a URL ({e}); use Upload")
        self.presigned += 1
        return blobs_pb2.PresignUploadResponse(
            available=True,
            url=url,
            # Signed into the URL: S3 refuses a PUT of any other length.
            headers={"Content-Length": str(request.size)},
            staging_key=staging,
            expires_in=self._presign_expiry,
        )

    async def CommitUpload(  # noqa: N802 (the gRPC method's name)
        self, request: blobs_pb2.CommitUploadRequest, context: Context
    ) -> blobs_pb2.UploadResponse:
        await self._access.server(context, "CommitUpload")
        key = await self._key(request.blob, request.size, context, "CommitUpload")
        staging = request.staging_key
        match = _STAGING.fullmatch(staging)
        # Only a key of this digest's staging area: the commit deletes it, which must never reach another object.
        if match is None or match["hex"] != request.blob.digest.removeprefix("sha256:"):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"CommitUpload: staging_key {staging!r} is not a staging key of {request.blob.digest}; "
                f"accepted: {_STAGING_ACCEPTED}",
            )
        if not isinstance(self._store, S3Store):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "CommitUpload: the server's store is not S3; use Upload"
            )
        tmp = await anyio.to_thread.run_sync(self._scratch_dir)

        async def remove_scratch() -> None:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)

        async def remove_staged() -> None:
            with contextlib.suppress(StoreError):  # a leftover in uploads/ is harmless (and expired by lifecycle)
                await self._store.delete(staging)

        leftovers = _Leftovers(remove_scratch, remove_staged)
        try:
            path = tmp / "blob"
            try:
                await self._store.get_file(staging, path)
            except BlobNotFoundError:
                await leftovers.abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"CommitUpload: nothing was PUT at {staging!r} (the URL may have expired); presign again",
                )
            except StoreError as e:
                await leftovers.abort(
                    context, grpc.StatusCode.UNAVAILABLE, f"CommitUpload: the server's store failed: {e}"
                )
            size = (await anyio.Path(path).stat()).st_size
            if size != request.size:
                await leftovers.abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"CommitUpload of {request.blob.digest} refused: {size} bytes were PUT, {request.size} announced",
                )
            sha256 = await anyio.to_thread.run_sync(_file_sha256, path)
            stored = await self._store_verified(context, "CommitUpload", request.blob, path, sha256, leftovers)
        finally:
            await leftovers.remove()
        return self._answer(key, stored, size)
