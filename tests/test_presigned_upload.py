"""Presigned uploads: with an S3 store, a client PUTs its objects straight into the bucket and the server verifies
them before they appear under their digest key; anything else falls back to the streamed Upload.

The store is moto's S3 server over real HTTP; the control plane is a real in-process server.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import boto3
import grpc
import grpc.aio
import pytest
from s3_server import FaultyS3, moto_s3_with_test_credentials
from serve_support import TOKEN, FakeRunSource, bundle_bytes, serving

from flytelike._config import load_settings
from flytelike._proto.remote.v1 import blobs_pb2, blobs_pb2_grpc
from flytelike._remote import _presigned
from flytelike._remote._auth import bearer
from flytelike._remote._blob_service import BlobServicer
from flytelike._remote._control import ControlPlane
from flytelike._remote._run_client import RunClient
from flytelike._storage import bundle_key, data_key
from flytelike.errors import BackendError

PREFIX = "team"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FaultyS3]]:
    with moto_s3_with_test_credentials() as found:
        yield found


@pytest.fixture
def s3(server: tuple[str, FaultyS3]) -> Any:
    return boto3.client("s3", endpoint_url=server[0], region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any, server: tuple[str, FaultyS3]) -> str:
    name = f"fl-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    server[1].reset()
    return name


@pytest.fixture
def faults(server: tuple[str, FaultyS3], bucket: str) -> FaultyS3:
    return server[1]


@asynccontextmanager
async def s3_plane(home: Path, endpoint: str, bucket: str) -> AsyncIterator[tuple[str, BlobServicer]]:
    """A control plane whose store is ``s3://bucket/team`` on moto: its address and its BlobService."""
    settings = load_settings(home=home, store={"url": f"s3://{bucket}/{PREFIX}", "endpoint_url": endpoint})
    async with ControlPlane(settings, source=FakeRunSource(), bind="127.0.0.1:0", token=TOKEN) as plane:
        assert plane.blobs is not None
        yield plane.address, plane.blobs


async def objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket, by key."""

    def read() -> dict[str, bytes]:
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}

    return await anyio.to_thread.run_sync(read)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def data_ref(digest: str) -> blobs_pb2.BlobRef:
    return blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_DATA, digest=digest)


def bundle_ref(digest: str) -> blobs_pb2.BlobRef:
    return blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_BUNDLE, digest=digest)


async def test_objects_go_straight_to_s3_and_land_under_their_digest_key(
    tmp_path: Path, server: tuple[str, FaultyS3], s3: Any, bucket: str, faults: FaultyS3
) -> None:
    digest, archive = bundle_bytes()
    payload = b"x" * 3_000_000
    async with s3_plane(tmp_path / "srv", server[0], bucket) as (at, blobs):
        for machine in ("laptop", "ci"):  # the second finds the bundle there: no second upload
            async with RunClient(at, token=TOKEN) as client:
                await client.upload_bundle(digest, lambda path: path.write_bytes(archive), tmp_path / machine)
        async with RunClient(at, token=TOKEN) as client:
            assert await client.upload_data(payload, tmp_path) == sha(payload)
        assert blobs.streamed_bytes == 0
        assert blobs.presigned == 2
        assert blobs.stored == 2
    stored = await objects(s3, bucket)
    assert stored == {f"{PREFIX}/{bundle_key(digest)}": archive, f"{PREFIX}/{data_key(sha(payload))}": payload}
    # The clients' PUTs went to staging keys, which the commits removed; the server wrote the digest keys.
    puts = faults.keys("PutObject")
    staged = [p for p in puts if p.startswith(f"/{bucket}/{PREFIX}/uploads/")]
    assert len(staged) == 2
    assert staged[0].startswith(f"/{bucket}/{PREFIX}/uploads/{digest.removeprefix('sha256:')}/")
    assert sorted(faults.keys("DeleteObject")) == sorted(staged)


async def test_bytes_that_do_not_match_the_digest_are_refused_and_nothing_lands(
    tmp_path: Path, server: tuple[str, FaultyS3], s3: Any, bucket: str
) -> None:
    good = b"the real content"
    tampered = b"the fake content"  # same length, so only the digest check can tell
    wrong_file = tmp_path / "tampered"
    wrong_file.write_bytes(tampered)
    digest, archive = bundle_bytes()
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(archive[:-40] + bytes(40))
    async with s3_plane(tmp_path / "srv", server[0], bucket) as (at, blobs):
        async with grpc.aio.insecure_channel(at) as channel:
            stub = blobs_pb2_grpc.BlobServiceStub(channel)
            offer = await stub.PresignUpload(
                blobs_pb2.PresignUploadRequest(blob=data_ref(sha(good)), size=len(good)), metadata=bearer(TOKEN)
            )
            assert offer.available
            assert "X-Amz-Expires=900" in offer.url
            assert "X-Amz-SignedHeaders=content-length%3Bhost" in offer.url  # S3 refuses a PUT of another length
            assert dict(offer.headers) == {"Content-Length": str(len(good))}
            await _presigned.put_file(offer.url, wrong_file, size=len(tampered), headers=offer.headers)
            assert f"{PREFIX}/{offer.staging_key}" in await objects(s3, bucket)  # S3 took it: nothing checks there
            commit = blobs_pb2.CommitUploadRequest(blob=data_ref(sha(good)), staging_key=offer.staging_key, size=16)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CommitUpload(commit, metadata=bearer(TOKEN))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"CommitUpload of {sha(good)} refused" in str(refused.value.details())
            assert hashlib.sha256(tampered).hexdigest() in str(refused.value.details())

            # More bytes than the URL was presigned for (real S3 refuses the PUT itself: the length is signed).
            offer = await stub.PresignUpload(
                blobs_pb2.PresignUploadRequest(blob=data_ref(sha(good)), size=len(good)), metadata=bearer(TOKEN)
            )
            longer = tmp_path / "longer"
            longer.write_bytes(good + b"!")
            await _presigned.put_file(offer.url, longer, size=len(good) + 1, headers={})
            commit = blobs_pb2.CommitUploadRequest(
                blob=data_ref(sha(good)), staging_key=offer.staging_key, size=len(good)
            )
            with pytest.raises(grpc.aio.AioRpcError, match=r"17 bytes were PUT, 16 announced") as refused:
                await stub.CommitUpload(commit, metadata=bearer(TOKEN))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        async with RunClient(at, token=TOKEN) as client:
            with pytest.raises(BackendError, match=rf"CommitUpload.*INVALID_ARGUMENT.*{digest} refused"):
                await client.upload(bundle_ref(digest), corrupt)
            assert len(await client.find_missing([data_ref(sha(good)), bundle_ref(digest)])) == 2
        assert blobs.streamed_bytes == 0
        assert blobs.stored == 0
        assert list((tmp_path / "srv" / "uploads").iterdir()) == []  # the server's scratch copies are gone
    assert await objects(s3, bucket) == {}  # neither a digest key nor a staging object


async def test_a_commit_touches_only_its_own_staging_key(
    tmp_path: Path, server: tuple[str, FaultyS3], s3: Any, bucket: str
) -> None:
    data = b"already stored"
    other = b"someone else's"
    async with s3_plane(tmp_path / "srv", server[0], bucket) as (at, _):
        async with RunClient(at, token=TOKEN) as client:
            await client.upload_data(data, tmp_path)
            await client.upload_data(other, tmp_path)
        before = await objects(s3, bucket)
        async with grpc.aio.insecure_channel(at) as channel:
            stub = blobs_pb2_grpc.BlobServiceStub(channel)
            hexdigest = sha(data).removeprefix("sha256:")
            for staging in (
                data_key(sha(other)),  # an object that is not a staging object: a commit would delete it
                f"uploads/{sha(other).removeprefix('sha256:')}/{'0' * 32}",  # another digest's staging area
                f"uploads/{hexdigest}/../../{data_key(sha(other))}",
            ):
                commit = blobs_pb2.CommitUploadRequest(blob=data_ref(sha(data)), staging_key=staging, size=len(data))
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.CommitUpload(commit, metadata=bearer(TOKEN))
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert f"staging_key {staging!r}" in str(refused.value.details())
                assert "accepted: the staging_key PresignUpload answered" in str(refused.value.details())
            # A well-formed key nothing was PUT at.
            commit = blobs_pb2.CommitUploadRequest(
                blob=data_ref(sha(data)), staging_key=f"uploads/{hexdigest}/{'0' * 32}", size=len(data)
            )
            with pytest.raises(grpc.aio.AioRpcError, match="nothing was PUT") as refused:
                await stub.CommitUpload(commit, metadata=bearer(TOKEN))
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            # Neither call takes a run's token or none.
            for call in (
                stub.PresignUpload(blobs_pb2.PresignUploadRequest(blob=data_ref(sha(data)), size=1)),
                stub.CommitUpload(commit),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await objects(s3, bucket) == before


async def test_a_failed_put_falls_back_to_the_streamed_upload(
    tmp_path: Path,
    server: tuple[str, FaultyS3],
    s3: Any,
    bucket: str,
    faults: FaultyS3,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = b"y" * 100_000
    faults.fail("PutObject", 1, status=403, code="SignatureDoesNotMatch")  # the client's PUT only
    async with s3_plane(tmp_path / "srv", server[0], bucket) as (at, blobs):
        async with RunClient(at, token=TOKEN) as client:
            with caplog.at_level(logging.WARNING, logger="flytelike.remote"):
                await client.upload_data(payload, tmp_path)
        assert blobs.presigned == 1
        assert blobs.streamed_bytes == len(payload)
        assert blobs.stored == 1
    assert await objects(s3, bucket) == {f"{PREFIX}/{data_key(sha(payload))}": payload}
    warned = [r.getMessage() for r in caplog.records if "streaming it through" in r.getMessage()]
    assert len(warned) == 1
    assert "HTTP 403" in warned[0]
    assert "SignatureDoesNotMatch" in warned[0]
    assert "X-Amz-Signature" not in warned[0]  # the URL's credentials are never logged


async def test_an_older_server_or_a_client_without_aiohttp_streams(
    tmp_path: Path, server: tuple[str, FaultyS3], s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = b"to an older server", b"without aiohttp"
    with monkeypatch.context() as m:
        # A server from before PresignUpload: the generated base class answers UNIMPLEMENTED. (Patched before the
        # server starts: gRPC takes the servicer's methods when it is registered.)
        m.setattr(BlobServicer, "PresignUpload", blobs_pb2_grpc.BlobServiceServicer.PresignUpload)
        async with s3_plane(tmp_path / "old", server[0], bucket) as (at, blobs), RunClient(at, token=TOKEN) as client:
            await client.upload_data(first, tmp_path)
            assert (blobs.presigned, blobs.streamed_bytes) == (0, len(first))
    async with s3_plane(tmp_path / "new", server[0], bucket) as (at, blobs):
        with monkeypatch.context() as m:
            m.setattr(_presigned, "_aiohttp", lambda: None)  # as if it were not installed
            async with RunClient(at, token=TOKEN) as client:
                await client.upload_data(second, tmp_path)
        assert (blobs.presigned, blobs.streamed_bytes) == (0, len(second))
    assert set(await objects(s3, bucket)) == {f"{PREFIX}/{data_key(sha(first))}", f"{PREFIX}/{data_key(sha(second))}"}


async def test_a_file_store_keeps_using_upload(tmp_path: Path) -> None:
    payload = b"z" * 2_500_000
    async with serving(tmp_path / "srv", FakeRunSource()) as plane:
        assert plane.blobs is not None
        async with grpc.aio.insecure_channel(plane.address) as channel:
            offer = await blobs_pb2_grpc.BlobServiceStub(channel).PresignUpload(
                blobs_pb2.PresignUploadRequest(blob=data_ref(sha(payload)), size=len(payload)), metadata=bearer(TOKEN)
            )
        assert not offer.available
        assert offer.reason == "the server's store is not S3; use Upload"
        async with RunClient(plane.address, token=TOKEN) as client:
            await client.upload_data(payload, tmp_path)
        assert plane.blobs.presigned == 0
        assert plane.blobs.streamed_bytes == len(payload)
        assert plane.blobs.stored == 1


def test_the_expiry_of_presigned_urls_is_checked(tmp_path: Path) -> None:
    for bad in (0, 8 * 24 * 3600):
        with pytest.raises(ValueError, match=rf"presign_expiry {bad} is out of range; accepted: 1 to 604800"):
            BlobServicer(store=None, access=None, scratch=tmp_path, presign_expiry=bad)  # type: ignore[arg-type]
