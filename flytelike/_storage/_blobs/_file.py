"""The ``file://`` blob store: objects as files under a root directory.

Every write goes to a temporary file in the object's own directory, is flushed and fsynced, and is renamed over the
final name with ``os.replace`` (atomic on POSIX), after which the directory is fsynced too: a reader, another
process or a crash sees the whole old object, the whole new one, or none. Blocking file calls run in a worker
thread (one thread call per operation), never on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeVar

import anyio.to_thread

from flytelike._storage._blobs._layout import TEMP_PREFIX, is_immutable, key_digest, validate_key
from flytelike._storage._blobs._protocol import PathLike, expected_digest, mismatch
from flytelike.errors import BlobNotFoundError, StoreError

__all__ = ["FileStore", "PartialFile"]

CHUNK = 1 << 20
T = TypeVar("T")


class FileStore:
    """A :class:`~flytelike._storage.BlobStore` over a directory (created on the first write).

    Attributes:
        root: the directory.
        requests: file operations by kind (``write``, ``read``, ``stat``, ``delete``), for tests and benchmarks.

    Args:
        root: an absolute path.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_absolute():
            raise StoreError(f"file store root {str(root)!r} is not an absolute path", url=str(root))
        self.requests: Counter[str] = Counter()
        self._closed = False

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # --- paths -------------------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        if self._closed:
            raise StoreError(f"file store {self.root} is closed", url=self.root.as_uri())
        return self.root.joinpath(*validate_key(key).split("/"))

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    async def _run(self, key: str, fn: Callable[[], T], *, reading: bool = False) -> T:
        # A read of a key whose path is a directory, or runs through a file, finds no object, as S3 would say.
        absent: tuple[type[OSError], ...] = (
            (FileNotFoundError, NotADirectoryError, IsADirectoryError) if reading else (FileNotFoundError,)
        )
        try:
            return await anyio.to_thread.run_sync(fn)
        except (BlobNotFoundError, StoreError):
            raise
        except absent:
            raise BlobNotFoundError(f"blob {self.url(key)}: no such object", url=self.url(key), key=key) from None
        except OSError as e:
            cause = e.strerror or str(e)
            raise StoreError(f"blob {self.url(key)}: {cause}", url=self.url(key), key=key, cause=cause) from e

    # --- writes ------------------------------------------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        named = key_digest(key)
        immutable = is_immutable(key)
        if named is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != named:
                raise mismatch(self.url(key), key, expected=named, actual=actual, what="the data to store")
        view = memoryview(data)

        def write() -> bool:
            if immutable and path.is_file():
                self.requests["stat"] += 1
                return False  # written once: the same digest is the same content
            self.requests["write"] += 1

            _atomic_write(path, (view[i : i + CHUNK] for i in range(0, len(view), CHUNK)), None)
            return True

        return await self._run(key, write)

    async def put_file(self, key: str, path: PathLike) -> bool:
        target = self._path(key)
        named = key_digest(key)
        immutable = is_immutable(key)
        source = Path(path)

        def write() -> bool:
            if immutable and target.is_file():
                self.requests["stat"] += 1
                return False
            self.requests["write"] += 1
            with open(source, "rb") as src:
                actual = _atomic_write(target, _blocks(src), named)
            if named is not None and actual != named:  # _atomic_write removed the file before renaming it
                raise mismatch(self.url(key), key, expected=named, actual=actual, what=f"the file {source}")
            return True

        try:
            return await self._run(key, write)
        except BlobNotFoundError:
            if not source.exists():  # the source is what is missing, not the object
                raise StoreError(
                    f"blob {self.url(key)}: the file to store, {source}, does not exist", url=self.url(key), key=key
                ) from None
            raise

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def unlink() -> None:
            self.requests["delete"] += 1
            try:
                path.unlink()
            except FileNotFoundError:
                return
            _fsync_dir(path.parent)

        await self._run(key, unlink)

    # --- reads -------------------------------------------------------------------------------------------------

    async def get(self, key: str, *, digest: str | None = None) -> bytes:
        path = self._path(key)
        expected = expected_digest(key, digest)

        def read() -> bytes:
            self.requests["read"] += 1
            return path.read_bytes()

        data = await self._run(key, read, reading=True)
        if expected is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise mismatch(self.url(key), key, expected=expected, actual=actual)
        return data

    async def get_file(self, key: str, path: PathLike, *, digest: str | None = None) -> None:
        source = self._path(key)
        expected = expected_digest(key, digest)
        target = Path(path)
        url = self.url(key)

        def copy() -> str:
            self.requests["read"] += 1
            with open(source, "rb") as src:
                try:
                    return _atomic_write(target, _blocks(src), expected, mkdir=False)
                except OSError as e:  # the destination's failure, not the object's
                    cause = e.strerror or str(e)
                    raise StoreError(
                        f"blob {url}: cannot write {target}: {cause}", url=url, key=key, cause=cause
                    ) from e

        actual = await self._run(key, copy, reading=True)
        if expected is not None and actual != expected:
            raise mismatch(self.url(key), key, expected=expected, actual=actual)

    async def exists(self, key: str) -> bool:
        path = self._path(key)

        def stat() -> bool:
            self.requests["stat"] += 1
            return path.is_file()

        return await self._run(key, stat)

    async def missing(self, keys: Iterable[str]) -> set[str]:
        paths = {key: self._path(key) for key in keys}

        def stat() -> set[str]:
            self.requests["stat"] += len(paths)
            return {key for key, path in paths.items() if not path.is_file()}

        return await anyio.to_thread.run_sync(stat)

    # --- lifetime ----------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class PartialFile:
    """An object being written: a temporary file beside ``path``, hashed as it is written, renamed to ``path`` by
    :meth:`commit` or removed by :meth:`discard`. Blocking: call it from a worker thread."""

    def __init__(self, path: Path, *, mkdir: bool = True) -> None:
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.temp = path.with_name(f"{TEMP_PREFIX}{os.urandom(8).hex()}-{path.name}")
        self._hash = hashlib.sha256()
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        self._file = os.fdopen(fd, "wb")

    def write(self, block: bytes | memoryview) -> None:
        self._hash.update(block)
        self._file.write(block)

    def commit(self, expected: str | None) -> str:
        """Flush, fsync and rename the file to ``path`` (then fsync its directory) and return the sha256 hex of its
        content; if that is not ``expected`` (when given), the file is removed instead and ``path`` left alone."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            actual = self._hash.hexdigest()
            if expected is not None and actual != expected:
                self.discard()
                return actual
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise
        _fsync_dir(self.path.parent)
        return actual

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def _atomic_write(path: Path, chunks: Iterable[bytes | memoryview], expected: str | None, *, mkdir: bool = True) -> str:
    """Write ``chunks`` to ``path`` atomically (see :class:`PartialFile`); the sha256 hex of what was written."""
    partial = PartialFile(path, mkdir=mkdir)
    try:
        for block in chunks:
            partial.write(block)
    except BaseException:
        partial.discard()
        raise
    return partial.commit(expected)


def _blocks(f: BinaryIO) -> Iterator[bytes]:
    while block := f.read(CHUNK):
        yield block


def _fsync_dir(directory: Path) -> None:
    # A rename or unlink is durable once the directory is synced; some file systems cannot sync a directory.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
