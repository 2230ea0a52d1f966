"""The file:// blob store: round trips, atomic writes (a reader never sees part of an object, a failed write leaves
nothing behind), write-once content-addressed objects, verified reads."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from flytelike._storage import BlobStore, FileStore, attempt_prefix, bundle_key, data_key, inputs_key, open_store
from flytelike._storage._blobs import _file
from flytelike.errors import BlobNotFoundError, DigestMismatchError, InvalidKeyError, StoreError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> FileStore:
    return FileStore(root)


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".fl-tmp-")]


async def test_round_trip(store: FileStore, root: Path, tmp_path: Path) -> None:
    assert isinstance(store, BlobStore)
    key = inputs_key("r1", "a0")
    assert not await store.exists(key)
    assert await store.put(key, b"inputs") is True
    assert (root / "runs/r1/a0/inputs.pb").read_bytes() == b"inputs"  # the layout, on disk
    assert await store.get(key) == b"inputs"
    assert await store.exists(key)
    assert store.url(key) == (root / "runs/r1/a0/inputs.pb").as_uri()

    logs = tmp_path / "logs.txt"
    logs.write_bytes(b"line\n" * 1000)
    attempt = attempt_prefix("r1", "a0", 1)
    assert await store.put_file(attempt.logs, logs)
    out = tmp_path / "out.txt"
    await store.get_file(attempt.logs, out)
    assert out.read_bytes() == logs.read_bytes()

    assert await store.missing([key, attempt.logs, attempt.outputs, attempt.error]) == {attempt.outputs, attempt.error}
    await store.put(key, b"replaced")
    assert await store.get(key) == b"replaced"
    await store.delete(key)
    await store.delete(key)  # absent: nothing happens
    assert not await store.exists(key)
    assert temporaries(root) == []


async def test_open_store_by_url(tmp_path: Path) -> None:
    spaced = tmp_path / "a store"
    async with open_store(spaced.as_uri()) as store:  # percent-encoded
        assert isinstance(store, FileStore)
        assert store.root == spaced
        await store.put("k", b"v")
    assert (spaced / "k").read_bytes() == b"v"
    with pytest.raises(StoreError, match="closed"):
        await store.get("k")


async def test_missing_objects(store: FileStore, tmp_path: Path) -> None:
    with pytest.raises(BlobNotFoundError) as info:
        await store.get("runs/r/a/inputs.pb")
    assert info.value.key == "runs/r/a/inputs.pb"
    assert info.value.url.endswith("/runs/r/a/inputs.pb")
    with pytest.raises(BlobNotFoundError):
        await store.get_file("runs/r/a/inputs.pb", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    await store.put("runs/r/a", b"a file where a directory would be")
    with pytest.raises(BlobNotFoundError):
        await store.get("runs/r/a/inputs.pb")
    with pytest.raises(BlobNotFoundError):
        await store.get("runs/r")  # a directory
    await store.put("k", b"v")
    with pytest.raises(StoreError, match="cannot write") as write:
        await store.get_file("k", tmp_path / "no-such-dir" / "out")
    assert not isinstance(write.value, BlobNotFoundError)
    with pytest.raises(StoreError, match="does not exist") as err:
        await store.put_file("k", tmp_path / "no-such-file")
    assert not isinstance(err.value, BlobNotFoundError)  # the source is missing, not the object


async def test_keys_are_validated_by_every_method(store: FileStore, tmp_path: Path) -> None:
    for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b"]:
        with pytest.raises(InvalidKeyError):
            await store.put(bad, b"")
        with pytest.raises(InvalidKeyError):
            await store.get(bad)
        with pytest.raises(InvalidKeyError):
            await store.exists(bad)
        with pytest.raises(InvalidKeyError):
            await store.missing(["ok", bad])
        with pytest.raises(InvalidKeyError):
            await store.delete(bad)
        with pytest.raises(InvalidKeyError):
            store.url(bad)
    assert not tmp_path.joinpath("b").exists()


# --- content-addressed objects ------------------------------------------------------------------------------


async def test_content_addressed_objects_are_written_once(store: FileStore, root: Path, tmp_path: Path) -> None:
    data = b"bundle"
    key = bundle_key("sha256:" + sha(data))
    assert await store.put(key, data) is True
    before = (root / key).stat()
    assert await store.put(key, data) is False
    source = tmp_path / "bundle.tar.gz"
    source.write_bytes(data)
    assert await store.put_file(key, source) is False
    after = (root / key).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.requests["write"] == 1


async def test_content_that_is_not_what_the_key_names_is_refused(store: FileStore, root: Path, tmp_path: Path) -> None:
    key = data_key(sha(b"expected"))
    with pytest.raises(DigestMismatchError) as info:
        await store.put(key, b"something else")
    assert (info.value.expected, info.value.actual) == (sha(b"expected"), sha(b"something else"))
    source = tmp_path / "f"
    source.write_bytes(b"something else")
    with pytest.raises(DigestMismatchError, match=str(source)):
        await store.put_file(key, source)
    assert not (root / key).exists()
    assert temporaries(root) == []


async def test_reads_verify_digests(store: FileStore, root: Path, tmp_path: Path) -> None:
    good = b"content"
    key = data_key(sha(good))
    await store.put(key, good)
    (root / key).write_bytes(b"corrupted")  # bit rot, or a hand edit
    with pytest.raises(DigestMismatchError) as info:
        await store.get(key)
    message = str(info.value)
    for part in (key, sha(good), sha(b"corrupted")):
        assert part in message
    out = tmp_path / "out"
    with pytest.raises(DigestMismatchError):
        await store.get_file(key, out)
    assert not out.exists()  # never a corrupt copy
    assert list(tmp_path.glob(".fl-tmp-*")) == []

    await store.put("runs/r/a/inputs.pb", good)  # a plain key, verified on request
    assert await store.get("runs/r/a/inputs.pb", digest=sha(good)) == good
    await store.get_file("runs/r/a/inputs.pb", out, digest="sha256:" + sha(good))
    assert out.read_bytes() == good
    with pytest.raises(DigestMismatchError):
        await store.get("runs/r/a/inputs.pb", digest=sha(b"other"))
    with pytest.raises(
        DigestMismatchError, match="is not the one the key names"
    ):  # contradicts the key: nothing is read
        await store.get(data_key(sha(good)), digest=sha(b"other"))
    with pytest.raises(InvalidKeyError, match="sha256"):
        await store.get("runs/r/a/inputs.pb", digest="md5:abc")


# --- atomicity ----------------------------------------------------------------------------------------------


async def test_a_failed_write_leaves_the_old_object_and_no_temporary(
    store: FileStore, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "runs/r/a/1/outputs.pb"
    await store.put(key, b"old")
    source = tmp_path / "big"
    source.write_bytes(os.urandom(3 * _file.CHUNK + 5))
    real = _file.PartialFile.write
    calls = []

    def failing(self: _file.PartialFile, block: bytes | memoryview) -> None:
        calls.append(len(block))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(self, block)

    monkeypatch.setattr(_file.PartialFile, "write", failing)
    with pytest.raises(StoreError, match="No space left on device") as info:
        await store.put_file(key, source)
    assert info.value.cause == "No space left on device"
    assert calls == [_file.CHUNK, _file.CHUNK]  # streamed in chunks, never read whole
    assert await store.get(key) == b"old"
    assert temporaries(root) == []

    monkeypatch.setattr(_file.PartialFile, "write", real)
    monkeypatch.setattr(_file.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(StoreError, match="Input/output error"):
        await store.put(key, b"new")
    assert (root / key).read_bytes() == b"old"
    assert temporaries(root) == []


async def test_a_reader_never_sees_part_of_an_object(
    store: FileStore, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "runs/r/a/1/outputs.pb"
    old, new = b"o" * (4 * _file.CHUNK), b"n" * (4 * _file.CHUNK)
    await store.put(key, old)
    real = _file.PartialFile.write
    writing = threading.Event()

    def slow(self: _file.PartialFile, block: bytes | memoryview) -> None:
        writing.set()
        time.sleep(0.05)  # the reader gets many looks while the object is half written
        real(self, block)

    monkeypatch.setattr(_file.PartialFile, "write", slow)
    seen: set[bytes] = set()
    done = False

    async def reader() -> None:
        while not done:
            seen.add(await anyio.to_thread.run_sync((root / key).read_bytes))

    async def writer() -> None:
        nonlocal done
        await store.put(key, new)
        done = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
    assert writing.is_set()
    seen.add((root / key).read_bytes())
    assert seen == {old, new}


async def test_a_new_object_appears_whole_or_not_at_all(
    store: FileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = data_key(sha(b"x" * 10))
    monkeypatch.setattr(_file.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(13, "Permission denied")))
    with pytest.raises(StoreError, match="Permission denied"):
        await store.put(key, b"x" * 10)
    assert not await store.exists(key)
    assert await store.missing([key]) == {key}
    assert temporaries(root) == []


def test_a_relative_root_is_refused() -> None:
    with pytest.raises(StoreError, match="absolute"):
        FileStore("relative/store")


async def test_a_writer_that_dies_mid_write_leaves_the_old_object(store: FileStore, root: Path, tmp_path: Path) -> None:
    key = "runs/r/a/1/outputs.pb"
    await store.put(key, b"old")
    source = tmp_path / "big"
    source.write_bytes(os.urandom(4 * _file.CHUNK))
    code = (
        "import os, sys, anyio\n"
        "from flytelike._storage import FileStore\n"
        "from flytelike._storage._blobs import _file\n"
        "real = _file.PartialFile.write\n"
        "written = []\n"
        "def dying(self, block):\n"
        "    real(self, block)\n"
        "    written.append(len(block))\n"
        "    if len(written) == 2:\n"
        "        self._file.flush()\n"
        "        os._exit(3)  # killed: no cleanup runs\n"
        "_file.PartialFile.write = dying\n"
        f"anyio.run(FileStore({str(root)!r}).put_file, {key!r}, {str(source)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 3, out.stderr
    assert await store.get(key) == b"old"
    left = temporaries(root)  # what the dead writer got to write is there, under a name no key can have
    assert [p.stat().st_size for p in left] == [2 * _file.CHUNK]
    with pytest.raises(InvalidKeyError):
        store.url(str(left[0].relative_to(root)))
