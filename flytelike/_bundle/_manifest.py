"""The manifest of a bundle and its digest.

The manifest lists every file by path with its sha256, size and mode (0644, or 0755 when executable), every
link with its target, and the Python ``major.minor`` and flytelike version that made it. Its canonical form is
compact JSON with sorted keys and ASCII escapes; the bundle's digest is ``sha256:`` + the sha256 of those bytes,
so it is known as soon as the files are hashed, before any archive is written, and it names exactly one tree.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flytelike.errors import BundleIntegrityError

__all__ = ["FORMAT", "MANIFEST_PATH", "Manifest", "ManifestEntry", "digest_of"]

FORMAT = 1
MANIFEST_PATH = ".flytelike/manifest.json"  # the archive member holding the manifest, always the first one
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
_MODES = {"0644": FILE_MODE, "0755": EXECUTABLE_MODE}
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """A file (``sha256``, ``size``, ``mode``) or a symbolic link (``link``, with size 0 and no sha256)."""

    path: str
    sha256: str = ""
    size: int = 0
    mode: int = FILE_MODE
    link: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.link is not None:
            return {"link": self.link}
        return {"mode": f"{self.mode:04o}", "sha256": self.sha256, "size": self.size}


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a bundle holds.

    Attributes:
        entries: the files and links, sorted by path.
        python: the ``major.minor`` of the Python that made the bundle.
        flytelike: the flytelike version that made it.

    Example:
        >>> m = Manifest.of([ManifestEntry("a.py", "0" * 64, 3)], python="3.11", flytelike="0.1.0")
        >>> m.to_bytes()[:40]
        b'{"files":{"a.py":{"mode":"0644","sha256"'
        >>> Manifest.from_bytes(m.to_bytes()) == m
        True
    """

    entries: tuple[ManifestEntry, ...]
    python: str
    flytelike: str

    @classmethod
    def of(cls, entries: Iterable[ManifestEntry], *, python: str, flytelike: str) -> Manifest:
        return cls(tuple(sorted(entries, key=lambda e: e.path)), python, flytelike)

    def to_bytes(self) -> bytes:
        """The canonical form: the same manifest gives the same bytes on every machine."""
        document = {
            "files": {e.path: e.to_json() for e in self.entries},
            "flytelike": self.flytelike,
            "format": FORMAT,
            "python": self.python,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def digest(self) -> str:
        """``sha256:<hex>`` of :meth:`to_bytes`: the bundle's identity."""
        return digest_of(self.to_bytes())

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and check a manifest read from an archive.

        Raises:
            BundleIntegrityError: it is not a manifest of this format.
        """
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise _bad(f"it is not JSON ({e})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise _bad(f"it is not a format-{FORMAT} manifest")
        files, python, version = document.get("files"), document.get("python"), document.get("flytelike")
        if not isinstance(files, dict) or not isinstance(python, str) or not isinstance(version, str):
            raise _bad("it lacks files, python or flytelike")
        return cls.of((_entry(path, value) for path, value in files.items()), python=python, flytelike=version)


def _bad(reason: str, path: str = MANIFEST_PATH) -> BundleIntegrityError:
    return BundleIntegrityError(f"bad bundle manifest: {path}: {reason}", path=path, reason=reason)


def _entry(path: str, value: object) -> ManifestEntry:
    if not isinstance(value, dict):
        raise _bad("the entry is not an object", path)
    if "link" in value:
        link = value["link"]
        if not isinstance(link, str) or set(value) != {"link"}:
            raise _bad("a link entry holds only a target string", path)
        return ManifestEntry(path, link=link)
    sha, size, mode = value.get("sha256"), value.get("size"), _MODES.get(str(value.get("mode")))
    if not isinstance(sha, str) or not _HEX.fullmatch(sha):
        raise _bad("sha256 is not 64 lowercase hex digits", path)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad("size is not a non-negative integer", path)
    if mode is None:
        raise _bad("mode is neither 0644 nor 0755", path)
    return ManifestEntry(path, sha, size, mode)
