"""Files and directories in literal maps, moved by reference through the blob store.

A ``fl.File`` or ``fl.Dir`` encoded in this process is a blob literal holding a local path and the content's digest.
A path means nothing on another machine, so whatever sends a literal map to a process that may not share this file
system (an attempt's ``inputs.pb``, its ``outputs.pb``, a child call over gRPC) first uploads the content by digest
(:func:`upload_refs`): a file to ``data/sha256/<hex>``; a directory as each of its files by digest plus its listing,
whose sha256 is the directory's digest (the listing is exactly what :func:`flytelike._digest.content_digest`
hashes), so every object is content-addressed and verified when it is read. The blob then holds the store URL of
that object and the name it had. Whatever receives such a map brings the content back as local files under the same
name (:func:`download_refs`), once per digest. Content stored once is never uploaded again: the store's existence
check answers first.

:func:`pin_local` is the same idea for the output cache: a cached output names a copy kept by digest under the cache's
own directory, never the task's path (a temporary file that is deleted later would break every cache hit).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio

from flytelike._proto.core.v1 import literals_pb2, types_pb2
from flytelike._storage._blobs import BlobStore, data_key
from flytelike.errors import StoreError

__all__ = ["download_refs", "has_blobs", "pin_local", "upload_refs"]

_MULTIPART = types_pb2.BlobType.MULTIPART
_CHUNK = 1 << 20


def _blobs(literal: literals_pb2.Literal) -> Iterator[literals_pb2.Blob]:
    kind = literal.WhichOneof("value")
    if kind == "blob_value":
        yield literal.blob_value
    elif kind == "list_value":
        for item in literal.list_value.literals:
            yield from _blobs(item)
    elif kind == "dict_value":
        for item in literal.dict_value.literals.values():
            yield from _blobs(item)
    elif kind == "record_value":
        for item in literal.record_value.fields.values():
            yield from _blobs(item)
    elif kind == "union_value":
        yield from _blobs(literal.union_value.value)


def _all_blobs(literals: literals_pb2.LiteralMap) -> list[literals_pb2.Blob]:
    return [blob for literal in literals.literals.values() for blob in _blobs(literal)]


def has_blobs(data: bytes) -> bool:
    """Whether a serialized LiteralMap holds any file or directory (most do not: the callers' fast path)."""
    return bool(data) and bool(_all_blobs(literals_pb2.LiteralMap.FromString(data)))


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return None if "://" in uri else uri


def _listing(path: str) -> list[tuple[str, str]]:
    """A directory's (relative path, file sha256 hex), as content_digest hashes them."""
    entries: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                entries.append((os.path.relpath(full, path), hashlib.file_digest(f, "sha256").hexdigest()))
    entries.sort(key=lambda e: f"{e[0]}\0{e[1]}\n")
    return entries


def _listing_bytes(entries: list[tuple[str, str]]) -> bytes:
    return "".join(f"{rel}\0{hex_}\n" for rel, hex_ in entries).encode("utf-8", "surrogateescape")


def _parse_listing(data: bytes, where: str) -> list[tuple[str, str]]:
    entries = []
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        rel, sep, hex_ = line.partition("\0")
        parts = rel.split("/")
        if not sep or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or len(hex_) != 64:
            raise StoreError(f"directory listing {where} holds a bad entry {rel!r}", url=where, key=where)
        entries.append((rel, hex_))
    return entries


def _scratch(parent: Path, name: str) -> Path:
    """A new empty directory beside where something is being written, renamed into place when it is whole."""
    path = parent / f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    path.mkdir(mode=0o700)
    return path


def _name_of(path: str) -> str:
    return os.path.basename(os.path.normpath(path)) or "content"


async def upload_refs(data: bytes, store: BlobStore) -> bytes:
    """Upload the local files and directories of a serialized LiteralMap; the map with store references.

    Blobs already in the store, remote ones (``s3://...`` given by the user) and paths that do not exist are left
    as they are; a map without blobs comes back as the same bytes.
    """
    if not data:
        return data
    literals = literals_pb2.LiteralMap.FromString(data)
    blobs = _all_blobs(literals)
    changed = False
    for blob in blobs:
        path = _local_path(blob.uri)
        if path is None or not os.path.exists(path):
            continue
        if blob.type.dimensionality == _MULTIPART:
            hex_ = await _upload_dir(store, path)
        else:
            hex_ = await _upload_file(store, path)
        blob.name = blob.name or _name_of(path)
        blob.uri = store.url(data_key(hex_))
        blob.digest = f"sha256:{hex_}"
        changed = True
    return literals.SerializeToString(deterministic=True) if changed else data


async def _upload_file(store: BlobStore, path: str) -> str:
    hex_ = await anyio.to_thread.run_sync(_file_hex, path)
    key = data_key(hex_)
    if await store.missing([key]):
        await store.put_file(key, path)
    return hex_


def _file_hex(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


async def _upload_dir(store: BlobStore, path: str) -> str:
    entries = await anyio.to_thread.run_sync(_listing, path)
    listing = _listing_bytes(entries)
    hex_ = hashlib.sha256(listing).hexdigest()
    key = data_key(hex_)
    if not await store.missing([key]):
        return hex_  # the listing is written last: all its files are stored
    keys = {data_key(h): rel for rel, h in entries}
    for missing in sorted(await store.missing(keys)):
        await store.put_file(missing, os.path.join(path, keys[missing]))
    await store.put(key, listing)
    return hex_


def _store_key(store: BlobStore, uri: str) -> str | None:
    base = store.url(data_key("0" * 64))[: -len("0" * 64)]
    if not uri.startswith(base):
        return None
    return data_key(uri[len(base) :])


async def download_refs(data: bytes, store: BlobStore, into: Path) -> bytes:
    """Bring the store references of a serialized LiteralMap back as local files under ``into``.

    Each object lands once, at ``into/<hex>/<name>``, written whole or not at all; blobs that are not in this store
    are left as they are. A map without store references comes back as the same bytes.
    """
    if not data:
        return data
    literals = literals_pb2.LiteralMap.FromString(data)
    changed = False
    for blob in _all_blobs(literals):
        key = _store_key(store, blob.uri)
        if key is None:
            continue
        hex_ = key.rsplit("/", 1)[1]
        name = blob.name or "content"
        target = into / hex_ / name
        if not os.path.exists(target):
            if blob.type.dimensionality == _MULTIPART:
                await _download_dir(store, key, target)
            else:
                await _download_file(store, key, target)
        blob.uri = str(target)
        changed = True
    return literals.SerializeToString(deterministic=True) if changed else data


async def _download_file(store: BlobStore, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    await store.get_file(key, target)


async def _download_dir(store: BlobStore, key: str, target: Path) -> None:
    listing = _parse_listing(await store.get(key), store.url(key))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _scratch(target.parent, target.name)
    try:
        for rel, hex_ in listing:
            file = tmp / rel
            file.parent.mkdir(parents=True, exist_ok=True)
            await store.get_file(data_key(hex_), file)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # another download of the same digest won: its copy is the same content
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pin_local(data: bytes, into: Path) -> bytes:
    """Copy the local files and directories of a serialized LiteralMap under ``into/<hex>/<name>``, once per
    digest, and point the map at the copies: what the output cache keeps instead of the task's own paths."""
    if not data:
        return data
    literals = literals_pb2.LiteralMap.FromString(data)
    changed = False
    for blob in _all_blobs(literals):
        path = _local_path(blob.uri)
        if path is None or not blob.digest.startswith("sha256:") or not os.path.exists(path):
            continue
        target = into / blob.digest.removeprefix("sha256:") / (blob.name or _name_of(path))
        if os.path.abspath(path) == str(target):
            continue
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _scratch(target.parent, "pin") / target.name
            if blob.type.dimensionality == _MULTIPART:
                shutil.copytree(path, tmp, symlinks=False)
            else:
                shutil.copyfile(path, tmp)
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.exists():
                    raise
            finally:
                shutil.rmtree(tmp.parent, ignore_errors=True)
        blob.name = blob.name or target.name
        blob.uri = str(target)
        changed = True
    return literals.SerializeToString(deterministic=True) if changed else data
