"""Which files of a project are left out of its bundle: a standard list, ``.gitignore`` and ``.flytelikeignore``.

Rules, in rising precedence (a later rule that matches wins, as in git):

1. the standard list :data:`STANDARD_EXCLUDES` (caches, virtual environments, build outputs, editor files);
2. the ``.gitignore`` files of the directories between the enclosing git work tree's top and the project root,
   when the root lies inside a bigger repository;
3. in each directory of the project, from the root down, its ``.gitignore`` and then its ``.flytelikeignore``.

Every file uses gitignore syntax (pathspec's git-faithful matcher) with patterns relative to its own directory, so
a deeper file overrides a shallower one and ``!pattern`` re-includes what an earlier rule excluded, including
entries of the standard list (``!/build/``). As in git, a file inside an excluded directory cannot be re-included,
because the directory is never entered. ``.git/info/exclude`` and a user's global excludes file are not read: they
differ between machines, and a bundle must not.

Never included, whatever the rules say: version-control directories (:data:`ALWAYS_EXCLUDED`), virtual
environments (any directory holding ``pyvenv.cfg`` or ``conda-meta``), and ``.flytelike/`` at the root, where the
archive keeps its manifest.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pathspec import GitIgnoreSpec
from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

__all__ = [
    "ALWAYS_EXCLUDED",
    "IGNORE_FILES",
    "RESERVED_DIR",
    "STANDARD_EXCLUDES",
    "Exclusion",
    "Rules",
    "is_environment",
]

STANDARD_EXCLUDES: tuple[str, ...] = (
    "__pycache__/",
    "*.py[cod]",
    ".venv/",
    "venv/",
    ".env",  # secrets travel as fl.Secret, never inside a code bundle
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".import_linter_cache/",
    ".tox/",
    ".nox/",
    ".ipynb_checkpoints/",
    ".eggs/",
    "*.egg-info/",
    "/build/",
    "/dist/",
    "node_modules/",
    ".coverage",
    ".coverage.*",
    "htmlcov/",
    ".idea/",
    "*.swp",
    ".DS_Store",
)
ALWAYS_EXCLUDED = frozenset({".git", ".hg", ".svn", ".jj"})
RESERVED_DIR = ".flytelike"  # at the root only: the archive's manifest lives there
IGNORE_FILES = (".gitignore", ".flytelikeignore")  # read in this order: the second wins over the first
_ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
STANDARD_SOURCE = "<standard excludes>"


@dataclass(frozen=True, slots=True)
class Exclusion:
    """The rule that excluded a path: the ignore file (relative to the root; ``../`` for files above it, or
    ``<standard excludes>``), its line (1-based) and the pattern."""

    source: str
    line: int
    pattern: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.pattern}"


@dataclass(frozen=True, slots=True)
class _Level:
    source: str
    base: str  # the directory the patterns are relative to, relative to the root ("" for the root and above)
    prefix: str  # prepended to the path below `base`: the root's place inside an ancestor's directory
    spec: GitIgnoreSpec
    lines: tuple[int, ...]  # the line of each pattern of `spec`
    texts: tuple[str, ...]
    # All patterns as one regex: most paths match none, and one search is ~20x cheaper than pathspec's loop over
    # the patterns. Only a path that matches it is given to the spec, whose answer (last match, negations) counts.
    any_match: re.Pattern[str]


def _level(source: str, base: str, prefix: str, lines: list[str]) -> _Level | None:
    patterns: list[GitIgnoreSpecPattern] = []
    numbers: list[int] = []
    texts: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            pattern = GitIgnoreSpecPattern(line)
        except ValueError:  # git skips a line it cannot parse (`!`, a trailing backslash); so do we
            continue
        if pattern.include is None:  # a comment, or a line git takes as matching nothing
            continue
        patterns.append(pattern)
        numbers.append(number)
        texts.append(line.rstrip())
    if not patterns:
        return None
    assert all(p.regex is not None for p in patterns)
    combined = "|".join(f"(?:{_GROUP.sub('(', p.regex.pattern)})" for p in patterns if p.regex is not None)
    return _Level(source, base, prefix, GitIgnoreSpec(patterns), tuple(numbers), tuple(texts), re.compile(combined))


_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")  # named groups would clash once the patterns are joined


def _read_lines(path: str) -> list[str] | None:
    """The lines of a regular file, or None when there is none (a link or a directory of that name is not read)."""
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:
            return f.read().splitlines()
    except OSError:
        return None


def is_environment(directory: str) -> bool:
    """Whether a directory is a virtual environment (venv, virtualenv, conda), whatever its name."""
    return any(os.path.lexists(os.path.join(directory, marker)) for marker in _ENVIRONMENT_MARKERS)


class Rules:
    """The ignore rules in force in one directory of a project: its parent's plus its own ignore files."""

    __slots__ = ("_levels",)

    def __init__(self, levels: tuple[_Level, ...]) -> None:
        self._levels = levels

    @classmethod
    def for_root(cls, root: str, *, standard: tuple[str, ...] = STANDARD_EXCLUDES) -> Rules:
        """The rules at the project root: the standard list, ancestors' ``.gitignore`` files when the root is inside
        a bigger git work tree, and the root's own ignore files."""
        levels: list[_Level] = []
        standard_level = _level(STANDARD_SOURCE, "", "", list(standard))
        if standard_level is not None:
            levels.append(standard_level)
        levels.extend(_ancestor_levels(root))
        return cls(tuple(levels)).child(root, "")

    def child(self, directory: str, rel: str) -> Rules:
        """The rules inside ``directory`` (absolute), ``rel`` being its path relative to the root ("" for it)."""
        added: list[_Level] = []
        for name in IGNORE_FILES:
            lines = _read_lines(os.path.join(directory, name))
            if lines is None:
                continue
            level = _level(f"{rel}/{name}" if rel else name, rel, "", lines)
            if level is not None:
                added.append(level)
        return Rules(self._levels + tuple(added)) if added else self

    def excluded(self, rel: str, *, is_dir: bool) -> Exclusion | None:
        """The rule that excludes ``rel`` (a path relative to the root, ``/``-separated), or None if it is kept."""
        for level in reversed(self._levels):
            below = rel[len(level.base) + 1 :] if level.base else rel
            candidate = level.prefix + below + ("/" if is_dir else "")
            if level.any_match.search(candidate) is None:
                continue
            result = level.spec.check_file(candidate)
            if result.include is None:
                continue
            if not result.include:  # re-included by a `!` pattern
                return None
            assert result.index is not None
            return Exclusion(level.source, level.lines[result.index], level.texts[result.index])
        return None


def _ancestor_levels(root: str) -> list[_Level]:
    """The ``.gitignore`` files above ``root`` up to the top of the git work tree that holds it, top first."""
    if os.path.lexists(os.path.join(root, ".git")):
        return []
    chain: list[str] = []
    directory = os.path.dirname(root)
    while True:
        chain.append(directory)
        if os.path.lexists(os.path.join(directory, ".git")):
            break
        parent = os.path.dirname(directory)
        if parent == directory:  # no work tree above the root: its ignore files are not ours to read
            return []
        directory = parent
    levels: list[_Level] = []
    for directory in reversed(chain):
        lines = _read_lines(os.path.join(directory, ".gitignore"))
        if lines is None:
            continue
        prefix = os.path.relpath(root, directory).replace(os.sep, "/") + "/"
        up = os.path.relpath(directory, root).replace(os.sep, "/")
        level = _level(f"{up}/.gitignore", "", prefix, lines)
        if level is not None:
            levels.append(level)
    return levels
