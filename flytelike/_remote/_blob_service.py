"""The BlobService of ``flytelike serve``: which objects the store lacks, and uploads checked against their digest.

An upload is received into a temporary file (never held in memory whole) and checked before it reaches the store:
a data object by the sha256 of its bytes, a bundle by verifying the whole archive against its manifest digest (the
same checks as extraction on a task's machine). Nothing that fails a check is stored.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import grpc
import grpc.aio

from flytelike._bundle import extract_bundle
from flytelike._proto.remote.v1 import blobs_pb2, blobs_pb2_grpc
from flytelike._remote._access import Access
from flytelike._storage import BlobStore, bundle_key, data_key
from flytelike.errors import BundleIntegrityError, FlytelikeError, StoreError

__all__ = ["BlobServicer", "blob_key"]

log = logging.getLogger("flytelike.serve")

Context = grpc.aio.ServicerContext[Any, Any]

MAX_UPLOAD = 1 << 30
"""Bytes one upload may hold (a bundle is refused by the client above 500 MB already)."""


def blob_key(ref: blobs_pb2.BlobRef) -> str:
    """The store key of a blob; ValueError naming the field for a bad kind or digest."""
    if ref.kind == blobs_pb2.BLOB_KIND_BUNDLE:
        return bundle_key(ref.digest)
    if ref.kind == blobs_pb2.BLOB_KIND_DATA:
        return data_key(ref.digest)
    raise ValueError(f"blob.kind {ref.kind} is not a blob kind; accepted: BLOB_KIND_BUNDLE, BLOB_KIND_DATA")


def _verify_bundle(path: Path, digest: str, scratch: Path) -> None:
    with path.open("rb") as archive:
        extract_bundle(archive, scratch / "check", digest=digest)


class BlobServicer(blobs_pb2_grpc.BlobServiceServicer):
    """BlobService over the server's store.

    Args:
        store: the server's blob store.
        access: the token checks (the server's token only).
        scratch: a directory for uploads in flight.
    """

    def __init__(self, *, store: BlobStore, access: Access, scratch: Path) -> None:
        self._store = store
        self._access = access
        self._scratch = scratch
        self.stored = 0  # objects written by uploads (the others were there already)

    def _scratch_dir(self) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self._scratch, prefix="upload-"))

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
        try:
            key = blob_key(header.blob)
        except (ValueError, StoreError) as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Upload: {e}")
            raise
        if header.size > MAX_UPLOAD:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Upload: size {header.size} is above the limit of {MAX_UPLOAD} bytes"
            )
        tmp = await anyio.to_thread.run_sync(self._scratch_dir)
        try:
            path = tmp / "blob"
            sha = hashlib.sha256()
            size = 0
            async with await anyio.open_file(path, "wb") as out:
                async for message in request_iterator:
                    chunk = message.chunk
                    size += len(chunk)
                    if size > header.size:
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT, f"Upload: more than the {header.size} bytes announced"
                        )
                    sha.update(chunk)
                    await out.write(chunk)
            if size != header.size:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Upload: {size} bytes received, {header.size} announced"
                )
            digest = header.blob.digest
            try:
                if header.blob.kind == blobs_pb2.BLOB_KIND_BUNDLE:
                    await anyio.to_thread.run_sync(_verify_bundle, path, digest, tmp)
                elif sha.hexdigest() != digest.removeprefix("sha256:"):
                    raise StoreError(f"its content has sha256 {sha.hexdigest()}, not {digest}")
            except (BundleIntegrityError, StoreError) as e:
                log.warning("refused an upload of %s from %s: %s", digest, context.peer(), e)
                # Removed before the answer goes out: a client told "refused" finds nothing left behind.
                await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Upload of {digest} refused: {e}")
            try:
                stored = await self._store.put_file(key, path)
            except FlytelikeError as e:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"Upload: the server's store failed: {e}")
                raise
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)
        if stored:
            self.stored += 1
            log.info("stored %s (%d bytes)", key, size)
        return blobs_pb2.UploadResponse(stored=stored, url=self._store.url(key))
