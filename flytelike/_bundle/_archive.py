"""The reproducible tar.gz of a bundle.

The same manifest gives byte-identical archives with the same zlib: the manifest first (as
:data:`~flytelike._bundle._manifest.MANIFEST_PATH`), then the entries in manifest (path) order; no directory
entries; uid/gid 0, empty user and group names, mtime 0, modes 0644/0755 (0777 for links, as tar writes them);
POSIX pax format, UTF-8 names; a gzip header with mtime 0 and no file name. The digest does not depend on any of
this: it is the manifest's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Sequence
from typing import BinaryIO

from flytelike._bundle._manifest import FILE_MODE, MANIFEST_PATH, Manifest
from flytelike._bundle._select import SourceFile
from flytelike.errors import BundleError

__all__ = ["COMPRESSLEVEL", "write_archive"]

COMPRESSLEVEL = 6  # zlib's default: level 9 costs about twice the time for a few percent on source code


def _info(name: str, *, size: int = 0, mode: int = FILE_MODE, link: str | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        info.mode = 0o777
    return info


class _Hashing(io.RawIOBase):
    """Reads a file for tarfile while hashing what was read."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.hash.update(data)
        return data


def _changed(path: str) -> BundleError:
    reason = "it changed while it was being bundled"
    return BundleError(f"cannot bundle {path}: {reason}; bundle again", path=path, reason=reason)


def write_archive(manifest: Manifest, files: Sequence[SourceFile], out: BinaryIO) -> None:
    """Write the archive of ``manifest`` to ``out``, reading each file from ``files`` (matched by path).

    Every file is hashed again as it is read; one whose bytes differ from the manifest (it changed since) is an
    error naming it, so an archive always holds what its digest says.

    Raises:
        BundleError: a file changed or vanished since the manifest was made.
    """
    sources = {f.path: f for f in files}
    data = manifest.to_bytes()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=COMPRESSLEVEL) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar,
    ):
        tar.addfile(_info(MANIFEST_PATH, size=len(data)), io.BytesIO(data))
        for entry in manifest.entries:
            if entry.link is not None:
                tar.addfile(_info(entry.path, link=entry.link))
                continue
            try:
                with open(sources[entry.path].full, "rb") as f:
                    reader = _Hashing(f)
                    tar.addfile(_info(entry.path, size=entry.size, mode=entry.mode), reader)
                    extra = f.read(1)
            except (OSError, tarfile.ReadError, KeyError):
                raise _changed(entry.path) from None
            if extra or reader.hash.hexdigest() != entry.sha256:
                raise _changed(entry.path)
