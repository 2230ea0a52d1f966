"""The files of a project that go into its bundle (see :mod:`flytelike._bundle._ignore` for the rules).

Symbolic links are kept as links, never followed, when their target stays inside the root; the target is stored
relative to the link (an absolute link into the project is rewritten), so the bundle does not depend on where
the project lives. A link whose target leaves the root is an error naming it, rather than a file that silently
goes missing on the other side: ignore it (``.flytelikeignore``) or replace it by what it points to. Files that
cannot travel (sockets, fifos, devices) and names that are not UTF-8 are errors too, unless ignored.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from flytelike._bundle._ignore import ALWAYS_EXCLUDED, RESERVED_DIR, STANDARD_EXCLUDES, Exclusion, Rules, is_environment
from flytelike.errors import BundleError

__all__ = ["SourceFile", "explain", "select_files"]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file (or link) to bundle.

    Attributes:
        path: its path relative to the root, ``/``-separated.
        full: its absolute path on this machine.
        size: its size in bytes (0 for a link).
        executable: the owner's execute bit is set (bundled as mode 0755, else 0644).
        link: the target of a symbolic link, relative to the link's directory; None for a regular file.
        mtime_ns: modification time, with ``size`` and ``inode`` the key of the hash cache.
        inode: inode number.
    """

    path: str
    full: str
    size: int
    executable: bool
    link: str | None
    mtime_ns: int
    inode: int


def _fail(rel: str, reason: str) -> BundleError:
    return BundleError(
        f"cannot bundle {rel}: {reason}; add it to .flytelikeignore to leave it out", path=rel, reason=reason
    )


def _check_name(rel: str) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(
            rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "its name is not UTF-8"
        ) from None


def _link_target(full: str, rel: str, real_root: str) -> str:
    target = os.readlink(full)
    real = os.path.realpath(full)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise _fail(rel, f"it is a symbolic link to {target}, which is outside the project root {real_root}")
    return os.path.relpath(real, os.path.dirname(full)).replace(os.sep, "/")


def select_files(root: str | os.PathLike[str], *, standard: tuple[str, ...] = STANDARD_EXCLUDES) -> list[SourceFile]:
    """The files under ``root`` that the ignore rules keep, sorted by path.

    Args:
        root: the project root (see :func:`~flytelike._bundle.find_root`).
        standard: the standard exclusion list, in gitignore syntax.

    Raises:
        BundleError: a kept entry cannot be bundled (a link leaving the root, a socket, an unreadable directory,
            a name that is not UTF-8); the error names it.
    """
    real_root = os.path.realpath(root)
    out: list[SourceFile] = []
    _walk(real_root, "", Rules.for_root(real_root, standard=standard), real_root, out)
    out.sort(key=lambda f: f.path)
    return out


def _walk(directory: str, rel_dir: str, rules: Rules, real_root: str, out: list[SourceFile]) -> None:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise _fail(rel_dir or ".", f"the directory cannot be read ({e.strerror})") from None
    for entry in entries:
        name = entry.name
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if name in ALWAYS_EXCLUDED or (not rel_dir and name == RESERVED_DIR):
            continue
        _check_name(rel)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:
            raise _fail(rel, f"it cannot be read ({e.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            if is_environment(entry.path) or rules.excluded(rel, is_dir=True) is not None:
                continue
            _walk(entry.path, rel, rules.child(entry.path, rel), real_root, out)
            continue
        if rules.excluded(rel, is_dir=False) is not None:
            continue
        if stat.S_ISLNK(st.st_mode):
            link = _link_target(entry.path, rel, real_root)
            out.append(SourceFile(rel, entry.path, 0, False, link, st.st_mtime_ns, st.st_ino))
        elif stat.S_ISREG(st.st_mode):
            executable = bool(st.st_mode & stat.S_IXUSR)
            out.append(SourceFile(rel, entry.path, st.st_size, executable, None, st.st_mtime_ns, st.st_ino))
        else:
            raise _fail(rel, "it is not a regular file, directory or symbolic link")


def explain(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Exclusion | None:
    """Why ``path`` (absolute, or relative to ``root``) is left out of the bundle, or None if it is not.

    Each directory above it is checked first, as the walk does: a file inside an excluded directory is excluded
    by the directory's rule.
    """
    real_root = os.path.realpath(root)
    given = os.path.abspath(path) if os.path.isabs(path) else os.path.join(real_root, path)
    # The directories are resolved as the walk sees them; the last component is not: a link is explained itself.
    full = Path(os.path.realpath(os.path.dirname(given)), os.path.basename(given))
    rel = os.path.relpath(full, real_root).replace(os.sep, "/")
    if rel == ".." or rel.startswith("../"):
        return Exclusion("<outside the project root>", 0, real_root)
    parts = rel.split("/")
    rules = Rules.for_root(real_root)
    directory = real_root
    for i, name in enumerate(parts):
        sub = "/".join(parts[: i + 1])
        if name in ALWAYS_EXCLUDED or (i == 0 and name == RESERVED_DIR):
            return Exclusion("<always excluded>", 0, name)
        directory = os.path.join(directory, name)
        last = i == len(parts) - 1
        is_dir = not last or (os.path.isdir(directory) and not os.path.islink(directory))
        if is_dir and is_environment(directory):
            return Exclusion("<virtual environment>", 0, sub + "/")
        found = rules.excluded(sub, is_dir=is_dir)
        if found is not None:
            return found
        if not last:
            rules = rules.child(directory, sub)
    return None
