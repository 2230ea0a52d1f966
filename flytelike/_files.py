"""File and directory values that tasks pass to each other.

A ``File``/``Dir`` names data by URI (a local path or ``s3://...``). When a value crosses to another machine the
runtime uploads local data to the blob store and the receiving task gets a ``File`` whose ``path`` it can read.

Example:
    >>> import flytelike as fl
    >>> fl.File("data/train.csv").name
    'train.csv'
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from flytelike.errors import SpecError

__all__ = ["Dir", "File"]


def _uri(value: object, owner: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise SpecError(f"{owner}.path", value, "not a path or URI", accepted="'data/x.csv' or 's3://bucket/x.csv'")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Paths travel as UTF-8 (templates, records, other machines); undecodable bytes would be lost there.
        raise SpecError(f"{owner}.path", value, "not valid UTF-8 text", accepted="a path of valid characters") from None
    return value


@dataclass(frozen=True, slots=True)
class _Blob:
    path: str
    format: str = ""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "path", _uri(self.path, owner))
        if not isinstance(self.format, str):
            raise SpecError(f"{owner}.format", self.format, "must be a string", accepted="'csv'")

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def is_remote(self) -> bool:
        return "://" in self.path and not self.path.startswith("file://")

    def __fspath__(self) -> str:
        if self.is_remote:
            raise TypeError(f"{self.path} is remote; the runtime downloads it before a task reads it")
        return self.path.removeprefix("file://")


@dataclass(frozen=True, slots=True)
class File(_Blob):
    """A single file, by local path or URI, with an optional format tag (``"csv"``, ``"parquet"``)."""


@dataclass(frozen=True, slots=True)
class Dir(_Blob):
    """A directory of files, by local path or URI prefix, with an optional format tag."""
