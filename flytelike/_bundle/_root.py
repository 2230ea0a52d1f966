"""Where a task file's project starts."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT_MARKERS", "find_root"]

# A directory holding one of these is a project root. `.git` may be a file (worktrees, submodules).
ROOT_MARKERS = ("pyproject.toml", ".git")


def find_root(file: str | os.PathLike[str]) -> Path:
    """The project root of ``file``: the nearest directory at or above it that holds ``pyproject.toml`` or
    ``.git``, else the file's own directory. Symbolic links in the path are resolved first.

    Raises:
        FileNotFoundError: ``file`` does not exist.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = (Path(d) / "pyproject.toml").write_text("")
        ...     (Path(d) / "pkg").mkdir()
        ...     _ = (Path(d) / "pkg" / "tasks.py").write_text("")
        ...     find_root(Path(d) / "pkg" / "tasks.py") == Path(d).resolve()
        True
    """
    path = Path(file).resolve(strict=True)
    start = path if path.is_dir() else path.parent
    for directory in (start, *start.parents):
        if any(os.path.lexists(directory / marker) for marker in ROOT_MARKERS):
            return directory
    return start
