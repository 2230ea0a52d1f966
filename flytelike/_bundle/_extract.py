"""Safe extraction of a bundle archive.

Every member passes tarfile's ``data`` filter and these checks of our own, and the first failure refuses the whole
archive, naming the member and why: the first member is the manifest and matches the expected digest; every other
member is listed in it, once, with the same kind, size and mode; no absolute path, ``..``, empty or ``.``
component, or path below a link; no link leaving the destination, no hard link, device or fifo; no setuid, setgid
or sticky bit; every file's sha256 as the manifest says, and every listed file present. Files are written as they
are read and hashed (one pass), into a temporary sibling of the destination that is renamed into place only when
everything matched, so a refused archive leaves nothing behind and a destination, once there, is complete.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

from flytelike._bundle._limits import FAIL_BYTES
from flytelike._bundle._manifest import MANIFEST_PATH, Manifest, ManifestEntry, digest_of
from flytelike.errors import BundleIntegrityError

__all__ = ["MAX_MANIFEST_BYTES", "extract_bundle"]

MAX_MANIFEST_BYTES = 64 << 20
_CHUNK = 1 << 20
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def _refuse(name: str, reason: str) -> BundleIntegrityError:
    return BundleIntegrityError(f"refused bundle member {name!r}: {reason}", path=name, reason=reason)


def _check_name(name: str, entries: set[str]) -> None:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(name, "absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise _refuse(name, "'..' in its path")
    if any(p in ("", ".") for p in parts):
        raise _refuse(name, "empty or '.' component in its path")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in entries:  # a file or a link cannot be a directory too
            raise _refuse(name, f"it lies below the file or link {'/'.join(parts[:i])}")


def _check_member(member: tarfile.TarInfo, entry: ManifestEntry | None, entries: set[str]) -> ManifestEntry:
    name = member.name
    _check_name(name, entries)
    if member.ischr() or member.isblk() or member.isfifo():
        raise _refuse(name, "device or fifo")
    if member.islnk():
        raise _refuse(name, "hard link")
    if member.mode & _SPECIAL_BITS:
        raise _refuse(name, f"setuid, setgid or sticky bit (mode {member.mode:04o})")
    if entry is None:
        raise _refuse(name, "not listed in the manifest")
    if member.issym():
        if entry.link is None:
            raise _refuse(name, "a link where the manifest lists a file")
        if member.linkname != entry.link:
            raise _refuse(name, f"link target {member.linkname!r} is not the manifest's {entry.link!r}")
        target = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
        if os.path.isabs(member.linkname) or target == ".." or target.startswith("../"):
            raise _refuse(name, f"link to {member.linkname!r} leaves the bundle")
        return entry
    if not member.isreg():
        raise _refuse(name, "neither a regular file nor a symbolic link")
    if entry.link is not None:
        raise _refuse(name, "a file where the manifest lists a link")
    if member.size != entry.size:
        raise _refuse(name, f"{member.size} bytes where the manifest says {entry.size}")
    if member.mode & 0o7777 != entry.mode:
        raise _refuse(name, f"mode {member.mode:04o} where the manifest says {entry.mode:04o}")
    return entry


def _read_manifest(tar: tarfile.TarFile, digest: str | None) -> Manifest:
    member = tar.next()
    if member is None or member.name != MANIFEST_PATH or not member.isreg():
        raise _refuse(member.name if member else "", f"the first member is not the manifest {MANIFEST_PATH}")
    if member.size > MAX_MANIFEST_BYTES:
        raise _refuse(member.name, f"manifest of {member.size} bytes is larger than {MAX_MANIFEST_BYTES}")
    f = tar.extractfile(member)
    assert f is not None
    data = f.read()
    if digest is not None and digest_of(data) != digest:
        raise BundleIntegrityError(
            f"bundle digest mismatch: expected {digest}, the archive's manifest has {digest_of(data)}",
            path=MANIFEST_PATH,
            reason="digest mismatch",
        )
    return Manifest.from_bytes(data)


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: ManifestEntry, target: str) -> None:
    source = tar.extractfile(member)
    assert source is not None
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    h = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
        os.fchmod(out.fileno(), entry.mode)
    if h.hexdigest() != entry.sha256:
        raise _refuse(member.name, f"sha256 {h.hexdigest()} where the manifest says {entry.sha256}")


def _extract_into(tar: tarfile.TarFile, root: str, digest: str | None, max_size: int) -> Manifest:
    manifest = _read_manifest(tar, digest)
    if manifest.total_size > max_size:  # members must have the manifest's sizes, so this bounds what is written
        raise BundleIntegrityError(
            f"refused bundle: its manifest lists {manifest.total_size} bytes, more than {max_size}",
            path=MANIFEST_PATH,
            reason="too large",
        )
    expected = {e.path: e for e in manifest.entries}
    listed = set(expected)
    for path in expected:
        _check_name(path, listed)  # a manifest listing a path below one of its files or links is refused whole
    seen: set[str] = set()
    while (member := tar.next()) is not None:
        if member.name in seen:
            raise _refuse(member.name, "it appears twice")
        entry = _check_member(member, expected.get(member.name), listed)
        seen.add(member.name)
        try:
            tarfile.data_filter(member, root)
        except tarfile.FilterError as e:
            raise _refuse(member.name, f"tarfile's data filter: {e}") from None
        target = os.path.join(root, *member.name.split("/"))
        try:
            if entry.link is not None:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(entry.link, target)
            else:
                _write_file(tar, member, entry, target)
        except FileExistsError:  # two names that this file system takes for one (case-insensitive, normalizing)
            raise _refuse(member.name, "it collides with another member on this file system") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise _refuse(missing[0], f"listed in the manifest but not in the archive ({len(missing)} missing)")
    return manifest


def extract_bundle(
    source: str | os.PathLike[str] | BinaryIO,
    dest: str | os.PathLike[str],
    *,
    digest: str | None = None,
    max_size: int = FAIL_BYTES,
) -> Manifest:
    """Extract a bundle archive into ``dest``, which must not exist yet, checking everything on the way.

    Args:
        source: the archive: a path, or a binary file object read once from start to end (a download stream).
        dest: the directory to create; its parent is created if missing.
        digest: the expected bundle digest (``sha256:<hex>``); the archive's manifest must have it.
        max_size: the most bytes of files the manifest may list (bundles larger than the build limit are refused).

    Returns:
        The manifest of what was extracted.

    Raises:
        BundleIntegrityError: the archive is unsafe, damaged or not the expected one; ``dest`` is not created.
        FileExistsError: ``dest`` exists (also when another process created it meanwhile).
    """
    dest = Path(dest)
    if os.path.lexists(dest):
        raise FileExistsError(f"{dest} exists; a bundle is extracted into a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-")
    try:
        with contextlib.ExitStack() as stack:
            f = stack.enter_context(open(source, "rb")) if isinstance(source, (str, os.PathLike)) else source
            try:
                tar = stack.enter_context(tarfile.open(fileobj=f, mode="r|gz"))
                manifest = _extract_into(tar, os.path.realpath(tmp), digest, max_size)
            except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as e:
                reason = f"not a readable tar.gz ({e or type(e).__name__})"
                raise BundleIntegrityError(f"refused bundle: {reason}", reason=reason) from None
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 is for while it is incomplete
        try:
            os.rename(tmp, dest)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(f"{dest} was created meanwhile, by another extraction?") from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
