"""The s3:// blob store against moto's S3 server over real HTTP: round trips, multipart, request budgets, retries
on throttling and 5xx (and none on 4xx), aborted multipart uploads; a real bucket with FLYTELIKE_REAL_AWS=1."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from s3_server import FaultyS3, moto_s3_with_test_credentials

from flytelike._storage import BlobStore, S3Options, S3Store, bundle_key, data_key, open_store
from flytelike.errors import BlobNotFoundError, DigestMismatchError, StoreError

MiB = 1 << 20
# Small parts (S3's minimum) and fast retries keep the tests quick; the rules are the same as the defaults'.
OPTIONS = S3Options(part_size=5 * MiB, multipart_threshold=5 * MiB, max_attempts=4, backoff=0.01, max_backoff=0.05)
# Read before the autouse fixture clears FLYTELIKE_* variables: opt-in and the bucket to use.
REAL_AWS = os.environ.get("FLYTELIKE_REAL_AWS") == "1"
REAL_URL = os.environ.get("FLYTELIKE_STORE__URL", "")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FaultyS3]]:
    with moto_s3_with_test_credentials() as found:
        yield found


@pytest.fixture
def endpoint(server: tuple[str, FaultyS3]) -> str:
    return server[0]


@pytest.fixture
def faults(server: tuple[str, FaultyS3]) -> FaultyS3:
    server[1].reset()
    return server[1]


@pytest.fixture
def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any, faults: FaultyS3) -> str:
    name = f"fl-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    faults.reset()
    return name


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """An empty directory (tmp_path also holds the autouse fixtures' home and working directory)."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
async def store(bucket: str, endpoint: str) -> AsyncIterator[S3Store]:
    async with S3Store(bucket, prefix="team/flytelike", endpoint_url=endpoint, options=OPTIONS) as s:
        yield s


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(s3: Any, bucket: str) -> list[Any]:
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


# --- behaviour ----------------------------------------------------------------------------------------------------


async def test_round_trip(store: S3Store, s3: Any, bucket: str, scratch: Path) -> None:
    assert isinstance(store, BlobStore)
    key = "runs/r1/a0/inputs.pb"
    assert await store.put(key, b"inputs") is True
    assert await store.get(key) == b"inputs"
    assert await store.exists(key)
    assert not await store.exists("runs/r1/a0/other.pb")
    assert store.url(key) == f"s3://{bucket}/team/flytelike/runs/r1/a0/inputs.pb"
    assert s3.get_object(Bucket=bucket, Key="team/flytelike/" + key)["Body"].read() == b"inputs"  # under the prefix

    source = scratch / "src.bin"
    source.write_bytes(b"file content")
    assert await store.put_file("runs/r1/a0/1/logs", source)
    await store.get_file("runs/r1/a0/1/logs", scratch / "back.bin")
    assert (scratch / "back.bin").read_bytes() == b"file content"

    await store.put(key, b"replaced")
    assert await store.get(key) == b"replaced"
    await store.delete(key)
    await store.delete(key)  # absent: nothing happens
    assert not await store.exists(key)


async def test_open_store_picks_s3_with_the_endpoint(bucket: str, endpoint: str) -> None:
    async with open_store(f"s3://{bucket}/p", endpoint_url=endpoint) as store:
        assert isinstance(store, S3Store)
        await store.put("x", b"1")
        assert await store.get("x") == b"1"


async def test_missing_errors_name_bucket_and_key(store: S3Store, bucket: str, faults: FaultyS3, scratch: Path) -> None:
    with pytest.raises(BlobNotFoundError) as info:
        await store.get("runs/r1/a0/inputs.pb")
    assert bucket in str(info.value)
    assert "team/flytelike/runs/r1/a0/inputs.pb" in str(info.value)
    assert info.value.key == "runs/r1/a0/inputs.pb"
    with pytest.raises(BlobNotFoundError):
        await store.get_file("nope", scratch / "out")
    assert not list(scratch.iterdir())  # no partial file
    assert faults.counts["GetObject"] == 2  # a 404 is never retried


async def test_a_missing_bucket_is_named(endpoint: str) -> None:
    async with S3Store("fl-no-such-bucket", endpoint_url=endpoint, options=OPTIONS) as store:
        with pytest.raises(StoreError, match=r"fl-no-such-bucket.*the bucket does not exist"):
            await store.put("k", b"v")


async def test_content_addressed_puts_are_skipped_when_stored(store: S3Store, faults: FaultyS3) -> None:
    data = b"bundle bytes"
    key = bundle_key(sha(data))
    assert await store.put(key, data) is True
    assert await store.put(key, data) is False
    assert faults.counts["PutObject"] == 1
    assert faults.counts["HeadObject"] == 2  # HEAD first, both times
    with pytest.raises(DigestMismatchError):
        await store.put(data_key(sha(b"other")), data)  # content that is not what the key names is refused
    assert faults.counts["PutObject"] == 1


async def test_reads_verify_content_addressed_objects(store: S3Store, s3: Any, bucket: str, scratch: Path) -> None:
    good, bad = b"the real content", b"something else"
    key = data_key(sha(good))
    s3.put_object(Bucket=bucket, Key="team/flytelike/" + key, Body=bad)  # replaced behind the store's back
    with pytest.raises(DigestMismatchError) as info:
        await store.get(key)
    assert (info.value.expected, info.value.actual) == (sha(good), sha(bad))
    for part in (key, sha(good), sha(bad)):
        assert part in str(info.value)
    with pytest.raises(DigestMismatchError):
        await store.get_file(key, scratch / "out")
    assert not list(scratch.iterdir())
    await store.put("runs/r/a/inputs.pb", good)
    assert await store.get("runs/r/a/inputs.pb", digest="sha256:" + sha(good)) == good
    with pytest.raises(DigestMismatchError):
        await store.get("runs/r/a/inputs.pb", digest=sha(bad))


async def test_missing_lists_a_shared_prefix_instead_of_asking_per_key(store: S3Store, faults: FaultyS3) -> None:
    stored = [bytes([i]) * 10 for i in range(40)]
    for data in stored:
        await store.put(f"runs/r1/a{data[0]}/inputs.pb", data)  # elsewhere in the bucket, listed past
        await store.put(data_key(sha(data)), data)
    absent = [data_key(sha(b"absent %d" % i)) for i in range(40)]
    present = [data_key(sha(d)) for d in stored]
    faults.reset()
    store.requests.clear()
    assert await store.missing([*present, *absent, "runs/r1/a0/inputs.pb", "runs/zz/a/inputs.pb"]) == {
        *absent,
        "runs/zz/a/inputs.pb",
    }
    assert faults.counts["ListObjectsV2"] == 1
    assert faults.counts["HeadObject"] == 2  # the two keys alone in their directories
    assert store.requests == faults.counts  # the store counts what it sends


async def test_missing_falls_back_to_asking_when_the_listing_is_long(
    bucket: str, endpoint: str, s3: Any, faults: FaultyS3
) -> None:
    for i in range(30):  # other objects between the asked-for keys: more pages would cost more than HEADs
        s3.put_object(Bucket=bucket, Key=f"data/m{i:05d}", Body=b"")
    options = S3Options(list_page_size=10, backoff=0.01)
    keys = ["data/a", "data/m00001", "data/m00029", "data/z"]
    faults.reset()
    async with S3Store(bucket, endpoint_url=endpoint, options=options) as store:
        assert await store.missing(keys) == {"data/a", "data/z"}
        assert faults.counts["ListObjectsV2"] == 2  # after two pages, two keys are left: asked for
        assert faults.counts["HeadObject"] == 2
        assert await store.missing(keys[:3]) == {"data/a"}
        assert faults.counts["ListObjectsV2"] == 3  # the first page has the first two; one more key is asked for
        assert faults.counts["HeadObject"] == 3


async def test_multipart_upload_of_a_large_file(
    store: S3Store, s3: Any, bucket: str, faults: FaultyS3, scratch: Path
) -> None:
    data = os.urandom(12 * MiB + 123)
    source = scratch / "big.bin"
    source.write_bytes(data)
    key = data_key(sha(data))
    assert await store.put_file(key, source)
    assert faults.counts["CreateMultipartUpload"] == 1
    assert faults.counts["UploadPart"] == 3
    assert faults.counts["CompleteMultipartUpload"] == 1
    assert faults.counts["PutObject"] == 0
    await store.get_file(key, scratch / "back.bin")  # streamed and verified
    assert (scratch / "back.bin").read_bytes() == data
    assert await store.get(key) == data
    assert not await store.put_file(key, source)  # already there
    assert leftovers(s3, bucket) == []


async def test_multipart_put_of_bytes(store: S3Store, faults: FaultyS3) -> None:
    data = os.urandom(6 * MiB)
    await store.put("runs/r/a/1/outputs.pb", data)
    assert faults.counts["UploadPart"] == 2
    assert await store.get("runs/r/a/1/outputs.pb") == data


# --- retries ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "SlowDown"), (400, "Throttling"), (429, "TooManyRequests"), (500, "InternalError"), (502, "BadGateway")],
)
async def test_throttling_and_5xx_are_retried(store: S3Store, faults: FaultyS3, status: int, code: str) -> None:
    faults.fail("PutObject", 2, status=status, code=code)
    faults.fail("GetObject", 2, status=status, code=code)
    await store.put("runs/r/a/inputs.pb", b"v")
    assert await store.get("runs/r/a/inputs.pb") == b"v"
    assert faults.counts["PutObject"] == 3
    assert faults.counts["GetObject"] == 3


async def test_head_and_list_are_retried(store: S3Store, faults: FaultyS3) -> None:
    await store.put("a/1", b"1")
    faults.reset()
    faults.fail("HeadObject", 1, status=503)
    faults.fail("ListObjectsV2", 2, status=500, code="InternalError")
    assert await store.exists("a/1")
    assert await store.missing(["a/1", "a/2", "a/3"]) == {"a/2", "a/3"}
    assert faults.counts["HeadObject"] == 2
    assert faults.counts["ListObjectsV2"] == 3


async def test_retries_end_with_an_error_naming_the_object(store: S3Store, faults: FaultyS3, bucket: str) -> None:
    faults.fail("PutObject", 100, status=503)
    with pytest.raises(StoreError) as info:
        await store.put("runs/r/a/inputs.pb", b"v")
    assert faults.counts["PutObject"] == OPTIONS.max_attempts
    message = str(info.value)
    for part in (bucket, "team/flytelike/runs/r/a/inputs.pb", f"after {OPTIONS.max_attempts} attempts", "SlowDown"):
        assert part in message


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (400, "InvalidRequest")])
async def test_other_4xx_are_not_retried(store: S3Store, faults: FaultyS3, status: int, code: str) -> None:
    faults.fail("PutObject", 1, status=status, code=code)
    with pytest.raises(StoreError, match=code) as info:
        await store.put("k", b"v")
    assert faults.counts["PutObject"] == 1
    assert info.value.cause.startswith(code)


async def test_a_retried_part_leaves_no_duplicate_upload(
    store: S3Store, s3: Any, bucket: str, faults: FaultyS3, scratch: Path
) -> None:
    data = os.urandom(11 * MiB)
    (scratch / "f").write_bytes(data)
    faults.fail("UploadPart", 2, status=500, code="InternalError")
    faults.fail("CompleteMultipartUpload", 1, status=503)
    await store.put_file("big", scratch / "f")
    assert faults.counts["CreateMultipartUpload"] == 1
    assert faults.counts["UploadPart"] == 3 + 2
    assert await store.get("big") == data
    assert leftovers(s3, bucket) == []


async def test_a_completion_whose_response_was_lost_is_not_an_error(
    store: S3Store, s3: Any, bucket: str, faults: FaultyS3, scratch: Path
) -> None:
    data = os.urandom(11 * MiB)
    (scratch / "f").write_bytes(data)
    faults.fail("CompleteMultipartUpload", 1, status=500, code="InternalError", applied=True)
    await store.put_file("big", scratch / "f")
    assert faults.counts["CompleteMultipartUpload"] == 2  # the retry finds no upload: the object is checked
    assert await store.get("big") == data
    assert leftovers(s3, bucket) == []


async def test_a_put_whose_response_was_lost_is_retried(store: S3Store, faults: FaultyS3) -> None:
    faults.fail("PutObject", 1, status=503, applied=True)
    await store.put("runs/r/a/1/outputs.pb", b"outputs")
    assert faults.counts["PutObject"] == 2
    assert await store.get("runs/r/a/1/outputs.pb") == b"outputs"


async def test_content_addressed_puts_upload_when_a_head_is_forbidden(store: S3Store, faults: FaultyS3) -> None:
    # Without s3:ListBucket, S3 answers a HEAD of a missing object with 403.
    faults.fail("HeadObject", 1, status=403, code="AccessDenied")
    data = b"data"
    assert await store.put(data_key(sha(data)), data)
    assert faults.counts["PutObject"] == 1
    faults.fail("HeadObject", 1, status=403, code="AccessDenied")
    with pytest.raises(StoreError, match="403"):
        await store.exists("k")  # a plain question gets the plain answer


async def test_a_failed_multipart_upload_is_aborted(
    store: S3Store, s3: Any, bucket: str, faults: FaultyS3, scratch: Path
) -> None:
    (scratch / "f").write_bytes(os.urandom(11 * MiB))
    faults.fail("UploadPart", 100, status=500, code="InternalError")
    with pytest.raises(StoreError, match="UploadPart failed after 4 attempts"):
        await store.put_file("big", scratch / "f")
    assert faults.counts["AbortMultipartUpload"] == 1
    assert leftovers(s3, bucket) == []
    assert not await store.exists("big")


async def test_a_cancelled_multipart_upload_is_aborted(
    store: S3Store, s3: Any, bucket: str, faults: FaultyS3, scratch: Path
) -> None:
    (scratch / "f").write_bytes(os.urandom(11 * MiB))
    faults.fail("UploadPart", 10_000, status=503)  # keeps retrying until cancelled
    slow = S3Options(
        part_size=5 * MiB, multipart_threshold=5 * MiB, max_attempts=10_000, backoff=0.05, max_backoff=0.05
    )
    async with (
        S3Store(bucket, prefix="p", endpoint_url=store.endpoint_url, options=slow) as patient,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(patient.put_file, "big", scratch / "f")
        with anyio.fail_after(60):
            while faults.counts["UploadPart"] < 4:  # parts are being retried
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert faults.counts["AbortMultipartUpload"] == 1
    assert leftovers(s3, bucket) == []


# --- a real bucket --------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (REAL_AWS and REAL_URL.startswith("s3://")),
    reason="needs a real S3 bucket: set FLYTELIKE_REAL_AWS=1 and FLYTELIKE_STORE__URL=s3://bucket/prefix",
)
async def test_a_real_bucket(scratch: Path) -> None:
    data = os.urandom(9 * MiB)
    key = data_key(sha(data))
    async with open_store(REAL_URL.rstrip("/") + f"/flytelike-test-{uuid.uuid4().hex[:8]}") as store:
        (scratch / "f").write_bytes(data)
        assert await store.put_file(key, scratch / "f")
        assert await store.missing([key, data_key(sha(b"no"))]) == {data_key(sha(b"no"))}
        assert await store.get(key) == data
        await store.delete(key)
