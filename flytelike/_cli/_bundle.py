"""``flytelike bundle FILE [--list] [-o PATH]``: what of a project would ship as its code bundle.

Prints the project root, the bundle digest, the number of files and their total size; ``--list`` adds every file
with its size (links with their target), ``-o PATH`` writes the reproducible archive. Nothing is uploaded. File
hashes are cached under ``$FLYTELIKE_HOME/cache/bundles``, so running it again on an unchanged tree is quick.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import click

from flytelike._bundle import Bundle, build_bundle, explain, format_size
from flytelike._config import load_settings
from flytelike.errors import BundleSizeWarning, FlytelikeError

__all__ = ["bundle"]

# As for the other commands: 2 when the input (the file, the project) is what is wrong.
EXIT_USAGE = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _build(file: str) -> Bundle:
    try:
        cache = load_settings().home / "cache" / "bundles"
    except FlytelikeError as e:
        _fail(str(e))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BundleSizeWarning)
        try:
            built = build_bundle(file, hash_cache=cache)
        except FlytelikeError as e:
            _fail(str(e))
    for w in caught:
        if issubclass(w.category, BundleSizeWarning):
            click.echo(f"Warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return built


def _inside(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` when it lies inside it."""
    rel = os.path.relpath(path.resolve(), root)
    return None if rel == ".." or rel.startswith(".." + os.sep) else rel.replace(os.sep, "/")


@click.command(short_help="Show what of a project would ship as its code bundle.")
@click.argument("file", type=click.Path(exists=True))
@click.option("--list", "list_", is_flag=True, help="Also print every file with its size.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the archive (a reproducible tar.gz) to this file.",
)
def bundle(file: str, list_: bool, output: str | None) -> None:
    """Print the project root of FILE, the digest of its code bundle, the number of files and their size.

    The root is the nearest directory at or above FILE holding pyproject.toml or .git (else FILE's directory).
    Left out: caches, virtual environments, build outputs and the like, what .gitignore files exclude, and what
    .flytelikeignore files (same syntax) exclude; a `!pattern` there re-includes a file. Symbolic links are kept
    as links when they stay inside the root; a link leaving it is an error naming it.

    \b
    flytelike bundle examples/train.py
    flytelike bundle examples/train.py --list
    flytelike bundle examples/train.py -o build/bundle.tar.gz
    """
    built = _build(file)
    click.echo(f"root    {built.root}")
    click.echo(f"digest  {built.digest}")
    click.echo(f"files   {len(built.manifest.entries)} ({format_size(built.size)})")
    if list_:
        for entry in built.manifest.entries:
            if entry.link is not None:
                click.echo(f"{'link':>10}  {entry.path} -> {entry.link}")
            else:
                click.echo(f"{format_size(entry.size):>10}  {entry.path}")
    if output is None:
        return
    target = Path(output)
    try:
        built.write_to(target)
    except FlytelikeError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot write {output}: {e.strerror or e}")
    click.echo(f"archive {output} ({format_size(target.stat().st_size)})")
    rel = _inside(target, built.root)
    if rel is not None and explain(built.root, rel) is None:
        click.echo(
            f"Warning: {output} is inside the project and would be part of its next bundle; "
            f"add {rel} to .flytelikeignore",
            err=True,
        )
