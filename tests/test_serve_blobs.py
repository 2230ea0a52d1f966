"""BlobService: only what the server lacks is uploaded, and nothing that fails its digest is stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from serve_support import TOKEN, FakeRunSource, bundle_bytes, serving

from flytelike._proto.remote.v1 import blobs_pb2
from flytelike._remote._run_client import RunClient
from flytelike._storage import bundle_key, data_key, open_store
from flytelike.errors import BackendError


async def test_an_upload_is_never_repeated(tmp_path: Path) -> None:
    digest, data = bundle_bytes()
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(data)
    async with serving(tmp_path / "srv", FakeRunSource()) as plane:
        for machine in ("laptop", "ci"):  # two clients, the same project
            async with RunClient(plane.address, token=TOKEN) as client:
                await client.upload_bundle(digest, lambda path: path.write_bytes(data), tmp_path / machine)
        assert plane.blobs is not None
        assert plane.blobs.stored == 1
        async with RunClient(plane.address, token=TOKEN) as client:
            first = await client.upload_data(b"x" * 3_000_000, tmp_path)  # several chunks
            again = await client.upload_data(b"x" * 3_000_000, tmp_path)
        assert first == again == "sha256:" + hashlib.sha256(b"x" * 3_000_000).hexdigest()
        assert plane.blobs.stored == 2
        async with open_store(plane.settings.store.url) as store:
            assert await store.get(data_key(first)) == b"x" * 3_000_000
            assert not await store.missing([bundle_key(digest)])


async def test_corrupt_uploads_are_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    digest, data = bundle_bytes()
    async with serving(tmp_path / "srv", FakeRunSource()) as plane, RunClient(plane.address, token=TOKEN) as client:
        wrong = tmp_path / "wrong"
        wrong.write_bytes(b"not what the digest says")
        ref = blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_DATA, digest="sha256:" + "a" * 64)
        with pytest.raises(BackendError, match=r"INVALID_ARGUMENT.*refused.*sha256"):
            await client.upload(ref, wrong)
        corrupt = tmp_path / "corrupt.tar.gz"
        corrupt.write_bytes(data[:-40] + bytes(40))  # the archive's end damaged
        bundle = blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_BUNDLE, digest=digest)
        with pytest.raises(BackendError, match=rf"INVALID_ARGUMENT.*Upload of {digest} refused"):
            await client.upload(bundle, corrupt)
        other_digest = "sha256:" + "b" * 64
        good = tmp_path / "good.tar.gz"
        good.write_bytes(data)
        with pytest.raises(BackendError, match=r"INVALID_ARGUMENT.*refused"):
            await client.upload(blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_BUNDLE, digest=other_digest), good)
        assert len(await client.find_missing([ref, bundle])) == 2
        assert plane.blobs is not None
        assert plane.blobs.stored == 0
        assert list((plane.settings.home / "uploads").iterdir()) == []  # refused uploads leave nothing behind
