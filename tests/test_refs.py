"""Files and directories by reference through the store, and cached file outputs kept as copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flytelike as fl
from flytelike._digest import content_digest
from flytelike._executor._cache_key import cache_key
from flytelike._proto.core.v1 import literals_pb2, types_pb2
from flytelike._storage import FileStore, download_refs, has_blobs, pin_local, upload_refs

MULTIPART, SINGLE = types_pb2.BlobType.MULTIPART, types_pb2.BlobType.SINGLE


def _map(**blobs: tuple[str, int]) -> bytes:
    literals = literals_pb2.LiteralMap()
    for name, (path, dimensionality) in blobs.items():
        blob = literals.literals[name].blob_value
        blob.uri = path
        blob.type.dimensionality = dimensionality  # type: ignore[assignment]
        blob.digest = content_digest(path)
    return literals.SerializeToString(deterministic=True)


def _blob(data: bytes, name: str) -> literals_pb2.Blob:
    return literals_pb2.LiteralMap.FromString(data).literals[name].blob_value


async def test_a_file_and_a_directory_round_trip_by_content(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "d" / "sub").mkdir(parents=True)
    (source / "d" / "a.txt").write_text("alpha")
    (source / "d" / "sub" / "b.bin").write_bytes(b"\x00\x01beta")
    (source / "report.csv").write_text("x,y\n1,2\n")
    data = _map(f=(str(source / "report.csv"), SINGLE), d=(str(source / "d"), MULTIPART))
    async with FileStore(tmp_path / "store") as store:
        sent = await upload_refs(data, store)
        assert _blob(sent, "f").uri == store.url("data/sha256/" + content_digest(str(source / "report.csv"))[7:])
        assert _blob(sent, "f").name == "report.csv"
        # Uploading again writes nothing new: every object is there already.
        before = dict(store.requests)
        assert await upload_refs(data, store) == sent
        assert store.requests["write"] == before["write"]
        back = await download_refs(sent, store, tmp_path / "elsewhere")
    file, folder = Path(_blob(back, "f").uri), Path(_blob(back, "d").uri)
    assert file.name == "report.csv"
    assert file.read_text() == "x,y\n1,2\n"
    assert folder.name == "d"
    assert (folder / "a.txt").read_text() == "alpha"
    assert (folder / "sub" / "b.bin").read_bytes() == b"\x00\x01beta"
    assert content_digest(str(folder)) == content_digest(str(source / "d"))


async def test_maps_without_local_files_are_left_as_they_are(tmp_path: Path) -> None:
    literals = literals_pb2.LiteralMap()
    literals.literals["n"].int_value = 3
    literals.literals["remote"].blob_value.uri = "s3://their-bucket/data.csv"
    data = literals.SerializeToString(deterministic=True)
    async with FileStore(tmp_path / "store") as store:
        assert await upload_refs(data, store) == data
        assert await download_refs(data, store, tmp_path / "x") == data
    assert has_blobs(data)
    assert not has_blobs(b"")


def test_the_cache_key_follows_the_file_content_not_its_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("same")
    b.write_text("same")

    class _Task:
        name, version, cache_version, cache_salt, cache_ignored = "t", "v1", None, None, ()

    key_a = cache_key(_Task(), _map(f=(str(a), SINGLE)))  # type: ignore[arg-type]
    assert key_a == cache_key(_Task(), _map(f=(str(b), SINGLE)))  # type: ignore[arg-type]
    a.write_text("changed")
    assert cache_key(_Task(), _map(f=(str(a), SINGLE))) != key_a  # type: ignore[arg-type]


def test_pinned_copies_survive_the_original(tmp_path: Path) -> None:
    temp = tmp_path / "tmp-output.txt"
    temp.write_text("result")
    pinned = pin_local(_map(out=(str(temp), SINGLE)), tmp_path / "cache-data")
    temp.unlink()
    kept = Path(_blob(pinned, "out").uri)
    assert kept.read_text() == "result"
    assert kept.name == "tmp-output.txt"


env = fl.TaskEnvironment(name="refs-cache")


@env.task(cache=fl.Cache(behavior="auto", version="1"))
async def produce(n: int) -> fl.File:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(f"n={n}")
    return fl.File(f.name)


async def test_a_cached_file_output_is_a_stored_copy() -> None:
    first = (await fl.run_async(produce, 5)).outputs
    Path(first).unlink()  # the temporary file a cleanup removes
    second = (await fl.run_async(produce, 5)).outputs
    assert Path(second).read_text() == "n=5"


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.binary(max_size=64), max_size=5))
def test_any_directory_round_trips(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]) -> None:
    import anyio

    base = tmp_path_factory.mktemp("dirs")
    folder = base / "folder"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)

    async def go() -> bytes:
        async with FileStore(base / "store") as store:
            return await download_refs(await upload_refs(_map(d=(str(folder), MULTIPART)), store), store, base / "out")

    back = Path(_blob(anyio.run(go), "d").uri)
    assert {p.name: p.read_bytes() for p in back.iterdir()} == files
