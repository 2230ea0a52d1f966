"""Building a bundle: root, files, size limits, hashes, manifest, digest; and writing its archive."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flytelike._bundle._archive import write_archive
from flytelike._bundle._hashcache import HashCache
from flytelike._bundle._ignore import STANDARD_EXCLUDES
from flytelike._bundle._limits import DEFAULT_LIMITS, FAIL_BYTES, WARN_BYTES, SizeLimits
from flytelike._bundle._manifest import EXECUTABLE_MODE, FILE_MODE, Manifest, ManifestEntry
from flytelike._bundle._root import find_root
from flytelike._bundle._select import SourceFile, explain, select_files
from flytelike._version import __version__
from flytelike.errors import BundleError, BundleSizeWarning, BundleTooLargeError

__all__ = ["FAIL_BYTES", "WARN_BYTES", "Bundle", "SizeLimits", "build_bundle", "format_size", "needs_upload"]

LARGEST_SHOWN = 5


def format_size(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``50.0 MiB``: binary units, one decimal."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


@dataclass(frozen=True, slots=True)
class Bundle:
    """A project's code, hashed and ready to be archived.

    Attributes:
        root: the project root.
        manifest: what the bundle holds.
        digest: the bundle's identity, ``sha256:<hex>`` of the canonical manifest.
        files: the files on this machine, in manifest order.
    """

    root: Path
    manifest: Manifest
    digest: str
    files: tuple[SourceFile, ...]

    @property
    def size(self) -> int:
        """Total bytes of the files (uncompressed)."""
        return self.manifest.total_size

    def write(self, out: BinaryIO) -> None:
        """Write the reproducible tar.gz to a binary stream (see :func:`~flytelike._bundle.write_archive`)."""
        write_archive(self.manifest, self.files, out)

    def write_to(self, path: str | os.PathLike[str]) -> Path:
        """Write the archive to ``path`` atomically (a temporary sibling renamed into place); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                self.write(f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        return target


def _largest(files: list[SourceFile]) -> tuple[tuple[str, int], ...]:
    ranked = sorted(files, key=lambda f: (-f.size, f.path))[:LARGEST_SHOWN]
    return tuple((f.path, f.size) for f in ranked)


def _describe(largest: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{path} ({format_size(size)})" for path, size in largest)


def _check_size(files: list[SourceFile], limits: SizeLimits) -> None:
    total = sum(f.size for f in files)
    if total > limits.fail:
        largest = _largest(files)
        raise BundleTooLargeError(
            f"the bundle would be {format_size(total)}, more than the limit of {format_size(limits.fail)}; "
            f"largest files: {_describe(largest)}; leave data out with .flytelikeignore and pass it as fl.File/fl.Dir",
            size=total,
            limit=limits.fail,
            largest=largest,
        )
    if total > limits.warn:
        largest = _largest(files)
        message = (
            f"the bundle is {format_size(total)} (warning above {format_size(limits.warn)}); "
            f"largest files: {_describe(largest)}"
        )
        warnings.warn(BundleSizeWarning(message, size=total, threshold=limits.warn, largest=largest), stacklevel=3)


def build_bundle(
    file: str | os.PathLike[str],
    *,
    hash_cache: Path | None = None,
    limits: SizeLimits = DEFAULT_LIMITS,
    standard_excludes: tuple[str, ...] = STANDARD_EXCLUDES,
    python: str | None = None,
) -> Bundle:
    """Select, hash and describe the project holding ``file``; no archive is written.

    Args:
        file: the task file (its project root is found with :func:`~flytelike._bundle.find_root`), or a
            project directory, which is then the root itself.
        hash_cache: a directory for the file hash cache (one small JSON file per project), e.g.
            ``$FLYTELIKE_HOME/cache/bundles``; None hashes every file.
        limits: the size thresholds.
        standard_excludes: the standard exclusion list, in gitignore syntax.
        python: the ``major.minor`` recorded in the manifest; defaults to this interpreter's.

    Raises:
        FileNotFoundError: ``file`` does not exist.
        BundleError: the task file itself is excluded by an ignore rule, or a file cannot be bundled.
        BundleTooLargeError: the files add up to more than ``limits.fail`` (checked before hashing anything).

    Warns:
        BundleSizeWarning: the files add up to more than ``limits.warn``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = Path(d, "tasks.py").write_text("print('hi')\\n")
        ...     b = build_bundle(Path(d, "tasks.py"), python="3.11")
        ...     [e.path for e in b.manifest.entries], b.digest.startswith("sha256:")
        (['tasks.py'], True)
    """
    given = Path(file)
    root = given.resolve(strict=True) if given.is_dir() else find_root(given)
    files = select_files(root, standard=standard_excludes)
    if not given.is_dir():
        real = os.path.relpath(given.resolve(), root).replace(os.sep, "/")
        if real not in {f.path for f in files}:
            rule = explain(root, real)
            reason = f"it is excluded by {rule}" if rule is not None else "it is not part of the project"
            raise BundleError(
                f"the task file {real} would not be in its own bundle: {reason}", path=real, reason=reason
            )
    _check_size(files, limits)
    cache = HashCache(HashCache.location(hash_cache, root) if hash_cache is not None else None)
    entries: list[ManifestEntry] = []
    for f in files:
        if f.link is not None:
            entries.append(ManifestEntry(f.path, link=f.link))
            continue
        try:
            sha = cache.sha256(f)
        except OSError as e:
            reason = f"it cannot be read ({e.strerror})"
            raise BundleError(f"cannot bundle {f.path}: {reason}", path=f.path, reason=reason) from None
        entries.append(ManifestEntry(f.path, sha, f.size, EXECUTABLE_MODE if f.executable else FILE_MODE))
    cache.save()
    version = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    manifest = Manifest.of(entries, python=version, flytelike=__version__)
    return Bundle(root, manifest, manifest.digest(), tuple(files))


async def needs_upload(digest: str, exists: Callable[[str], Awaitable[bool]]) -> bool:
    """Whether a bundle must be uploaded: ``exists`` (the store's existence check by digest) says it is missing.

    Example:
        >>> import asyncio
        >>> async def exists(digest: str) -> bool:
        ...     return digest == "sha256:" + "0" * 64
        >>> asyncio.run(needs_upload("sha256:" + "0" * 64, exists))
        False
    """
    return not await exists(digest)
