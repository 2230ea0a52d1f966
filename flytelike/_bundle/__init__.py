"""Code bundles: a project's files as one reproducible, content-addressed tar.gz (design.md §4.3).

A bundle is described by its manifest (every file's path, sha256, size and mode, every link's target, the Python
``major.minor`` and the flytelike version) and named by its digest, the sha256 of the canonical manifest. The
digest is known once the files are hashed, before any archive is written, so a caller checks the store first and
writes (and uploads) the archive only when it is missing; file hashes are cached by (size, mtime, inode), so an
unchanged tree costs a walk and a stat per file. Two checkouts of the same commit give the same digest and, with
the same zlib, byte-identical archives.

This package knows no store: it produces a :class:`Bundle` (digest, manifest, files) and writes archive bytes to a
stream or a path; :func:`extract_bundle` turns an archive back into a directory, refusing anything unsafe.

Example:
    >>> import io, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "pyproject.toml").write_text("[project]\\nname = 'demo'\\n")
    ...     _ = Path(d, "tasks.py").write_text("async def main() -> int: return 1\\n")
    ...     bundle = build_bundle(Path(d, "tasks.py"))
    ...     archive = io.BytesIO()
    ...     bundle.write(archive)
    ...     _ = archive.seek(0)
    ...     manifest = extract_bundle(archive, Path(d, "out"), digest=bundle.digest)
    ...     sorted(p.name for p in Path(d, "out").iterdir())
    ['pyproject.toml', 'tasks.py']
"""

from __future__ import annotations

from flytelike._bundle._archive import write_archive
from flytelike._bundle._build import (
    FAIL_BYTES,
    WARN_BYTES,
    Bundle,
    SizeLimits,
    build_bundle,
    format_size,
    needs_upload,
)
from flytelike._bundle._extract import extract_bundle
from flytelike._bundle._ignore import IGNORE_FILES, STANDARD_EXCLUDES, Exclusion
from flytelike._bundle._manifest import MANIFEST_PATH, Manifest, ManifestEntry
from flytelike._bundle._root import find_root
from flytelike._bundle._select import SourceFile, explain, select_files

__all__ = [
    "FAIL_BYTES",
    "IGNORE_FILES",
    "MANIFEST_PATH",
    "STANDARD_EXCLUDES",
    "WARN_BYTES",
    "Bundle",
    "Exclusion",
    "Manifest",
    "ManifestEntry",
    "SizeLimits",
    "SourceFile",
    "build_bundle",
    "explain",
    "extract_bundle",
    "find_root",
    "format_size",
    "needs_upload",
    "select_files",
    "write_archive",
]
