"""The blob store protocol that every store (``file://``, ``s3://``) implements, and the digest rules they share."""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from flytelike._storage._blobs._layout import _hex, key_digest, validate_key
from flytelike.errors import DigestMismatchError

__all__ = ["BlobStore", "expected_digest", "mismatch"]

PathLike = str | os.PathLike[str]


@runtime_checkable
class BlobStore(Protocol):
    """Objects (bytes) by key, over a file system or an object store; an async context manager.

    Keys are validated by :func:`~flytelike._storage.validate_key` and laid out by the helpers beside it.
    Content-addressed keys (``bundles/sha256/<hex>.tar.gz``, ``data/sha256/<hex>``) are written once (a second put
    is a no-op, and content that does not match the key is refused) and verified on every read. Writes are atomic:
    a reader sees the whole old object, the whole new one, or none, never a part. Every method raises a
    :class:`~flytelike.errors.StoreError` naming the object when the store fails.

    Example:
        >>> import anyio, tempfile
        >>> from flytelike._storage import data_key, open_store
        >>> async def demo(root: str) -> bytes:
        ...     async with open_store(f"file://{root}") as store:
        ...         await store.put("runs/r1/a0/inputs.pb", b"inputs")
        ...         return await store.get("runs/r1/a0/inputs.pb")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     anyio.run(demo, d)
        b'inputs'
    """

    async def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key``, replacing what was there; for a content-addressed key already stored,
        nothing is written. True if something was written."""
        ...

    async def put_file(self, key: str, path: PathLike) -> bool:
        """Store the file at ``path`` under ``key``, streamed (never read into memory whole); as :meth:`put`."""
        ...

    async def get(self, key: str, *, digest: str | None = None) -> bytes:
        """The object's bytes; verified against ``digest`` (``<hex>`` or ``sha256:<hex>``) if given, or against
        the digest a content-addressed key names. :class:`~flytelike.errors.BlobNotFoundError` if absent."""
        ...

    async def get_file(self, key: str, path: PathLike, *, digest: str | None = None) -> None:
        """Write the object to ``path`` (its directory must exist), streamed and verified as :meth:`get`;
        ``path`` appears whole or not at all."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    async def missing(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` have no object, in one call (and, on object stores, few requests)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object under ``key``; nothing happens if there is none."""
        ...

    def url(self, key: str) -> str:
        """The object's URL (``file:///root/key``, ``s3://bucket/prefix/key``)."""
        ...

    async def aclose(self) -> None:
        """Release the store's clients and connections; the store cannot be used afterwards."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def expected_digest(key: str, digest: str | None) -> str | None:
    """The hex digest a read of ``key`` must match: ``digest`` if given, else the one a content-addressed key
    names, else None. Validates the key; a ``digest`` that contradicts the key is an error before any read."""
    validate_key(key)
    named = key_digest(key)
    if digest is None:
        return named
    given = _hex(digest)
    if named is not None and named != given:
        raise DigestMismatchError(
            f"blob {key}: the digest asked for, sha256 {given}, is not the one the key names, sha256 {named}",
            key=key,
            expected=named,
            actual=given,
        )
    return given


def mismatch(url: str, key: str, *, expected: str, actual: str, what: str = "its content") -> DigestMismatchError:
    where = url or key
    return DigestMismatchError(
        f"blob {where}: {what} has sha256 {actual}, but sha256 {expected} was expected; the object is corrupt or "
        "was replaced (delete it, and write it again from its source)",
        url=url,
        key=key,
        expected=expected,
        actual=actual,
    )
