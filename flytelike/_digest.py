"""Content digests of local files and directories (``sha256:<hex>``), for keys that follow content, not names."""

from __future__ import annotations

import hashlib
import os

__all__ = ["content_digest"]

_CHUNK = 1 << 20


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def content_digest(path: str) -> str:
    """The digest of a file's bytes, or of a directory's sorted (relative path, file digest) list; ``""`` if the
    path does not exist or cannot be read (the caller then keys by name).

    Symbolic links are followed for files and not descended into for directories, as a copy would see them.
    """
    try:
        if os.path.isdir(path):
            entries: list[str] = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    entries.append(f"{os.path.relpath(full, path)}\0{_file_digest(full)}\n")
            entries.sort()
            return "sha256:" + hashlib.sha256("".join(entries).encode("utf-8", "surrogateescape")).hexdigest()
        return "sha256:" + _file_digest(path)
    except OSError:
        return ""
