"""The ``flytelike`` command.

:func:`main` (the console script) first offers the command line to the front door (:mod:`flytelike._cli._fast`),
which answers ``flytelike runs`` and ``flytelike --version`` in their plainest forms without loading click; every
other command line goes to the click group :data:`cli` (in ``_group``), loaded only then.
"""

from __future__ import annotations

import importlib
import os
import sys

from flytelike._cli._fast import answer

# Not typing's: the front door's answers load nothing they do not use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from flytelike._cli._group import cli

__all__ = ["cli", "main"]


def main() -> None:
    if answer(sys.argv[1:], os.environ):
        return
    # Imported here: click (under the group) costs more than a whole answer of the front door.
    from flytelike._cli._group import cli

    cli(prog_name="flytelike")


def __getattr__(name: str) -> Any:
    # `cli` on first use, for the same reason as in main().
    if name == "cli":
        return importlib.import_module("flytelike._cli._group").cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
