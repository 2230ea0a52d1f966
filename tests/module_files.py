"""Task modules written by tests: each under a unique name, imported the way ``flytelike run`` imports a file."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from flytelike._loader import load_file

_counter = itertools.count()


@contextmanager
def module_writer(folder: Path, header: str, prefix: str) -> Iterator[Callable[[str], ModuleType]]:
    """Yield ``write(source)``, which writes ``header`` + ``source`` to a new module in ``folder`` and imports it;
    the modules (and the folder on ``sys.path``) are gone afterwards."""
    names: list[str] = []

    def write(source: str) -> ModuleType:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        names.append(name)
        path = folder / f"{name}.py"
        path.write_text(header + textwrap.dedent(source))
        return load_file(path)

    try:
        yield write
    finally:
        for name in names:
            sys.modules.pop(name, None)
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
