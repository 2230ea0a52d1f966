"""A cache of file hashes, so an unchanged tree costs a walk and a stat per file instead of reading every byte.

An entry is trusted while the file's (size, mtime_ns, inode) are those it was hashed with. A file modified less
than :data:`RACY_NS` before the cache is written is not cached: a second change within the file system's timestamp
granularity would keep the same key (git's "racy clean" problem). Whatever the cache says, the archive writer
re-hashes what it reads and refuses a file that does not match, so a stale entry can never put wrong bytes under a
digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from flytelike._bundle._select import SourceFile

__all__ = ["RACY_NS", "HashCache", "hash_file"]

RACY_NS = 2_000_000_000
_FORMAT = 1


def hash_file(full: str) -> str:
    """The hex sha256 of a file's bytes."""
    with open(full, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class HashCache:
    """Hashes of one project's files, kept in one JSON file (``None``: nothing is kept)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._old: dict[str, object] = {}
        self._new: dict[str, list[int | str]] = {}
        self.hits = 0
        self.misses = 0
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                document = json.loads(path.read_bytes())
                if isinstance(document, dict) and document.get("format") == _FORMAT:
                    files = document.get("files")
                    if isinstance(files, dict):
                        self._old = files

    @staticmethod
    def location(cache_dir: Path, root: Path) -> Path:
        """The cache file of ``root`` inside ``cache_dir``."""
        return cache_dir / (hashlib.sha256(os.fsencode(root)).hexdigest()[:32] + ".json")

    def sha256(self, file: SourceFile) -> str:
        """The file's hex sha256, from the cache when its key is unchanged."""
        key: list[int | str] = [file.size, file.mtime_ns, file.inode]
        old = self._old.get(file.path)
        if isinstance(old, list) and len(old) == 4 and old[:3] == key and isinstance(old[3], str):
            self.hits += 1
            digest = old[3]
        else:
            self.misses += 1
            digest = hash_file(file.full)
        self._new[file.path] = [*key, digest]
        return digest

    def save(self) -> None:
        """Write the entries of this build (and only those) if anything changed; errors are ignored."""
        if self._path is None:
            return
        fresh = time.time_ns() - RACY_NS
        files = {p: e for p, e in self._new.items() if isinstance(e[1], int) and e[1] < fresh}
        if files == self._old:
            return
        document = json.dumps({"format": _FORMAT, "files": files}, sort_keys=True, separators=(",", ":"))
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(document)
                os.replace(tmp, self._path)
            except OSError:
                os.unlink(tmp)
                raise
