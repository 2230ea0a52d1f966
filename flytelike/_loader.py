"""Loading a user's file and finding its tasks, with errors that name the file and line.

A file is imported the way ``python FILE`` would see it: its directory goes first on ``sys.path`` and it becomes
a module named after its stem, so that classes defined in it (dataclasses, enums, models) pickle and import the
same way in a worker process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from flytelike._environment import TaskEnvironment
from flytelike._task import Task
from flytelike.errors import LoadError

__all__ = ["SHADOW_PREFIX", "find_task", "load_file", "tasks_in"]

SHADOW_PREFIX = "flytelike_file_"
"""The module name prefix of a user's file named like a standard-library module (``types.py``)."""


def load_file(path: str | Path) -> ModuleType:
    """Import a user's Python file; a failure raises LoadError naming the file and line."""
    file = Path(path).resolve()
    if not file.is_file():
        raise LoadError(f"{path}: no such file")
    if file.suffix != ".py":
        raise LoadError(f"{path}: not a Python file (expected a .py file)")
    name = file.stem
    # A file named like a standard-library module (types.py, json.py) would replace that module for the whole
    # process under its own name: it is imported under a name of its own, and its folder goes last on sys.path so
    # that `import json` anywhere still finds the standard library (its neighbours stay importable).
    shadows = name in sys.stdlib_module_names or name in sys.builtin_module_names
    if shadows:
        name = f"{SHADOW_PREFIX}{name}"
    existing = sys.modules.get(name)
    existing_file = getattr(existing, "__file__", None)
    if existing is not None and existing_file and Path(existing_file).resolve() == file:
        return existing
    folder = str(file.parent)
    if folder not in sys.path:
        if shadows:
            sys.path.append(folder)
        else:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise LoadError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except BaseException as e:
        del sys.modules[name]
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        line = _line_in(e, file)
        where = f"{path}:{line}" if line else str(path)
        raise LoadError(f"{where}: importing the file failed: {type(e).__name__}: {e}") from e
    return module


def _line_in(error: BaseException, file: Path) -> int | None:
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == file:
            line = frame.lineno
    return line


def load_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise LoadError(f"module {name!r} cannot be imported: {e}") from e


def _candidates(module: ModuleType) -> list[Task[..., Any]]:
    out: list[Task[..., Any]] = []
    for value in vars(module).values():
        if isinstance(value, Task):
            out.append(value)
        elif isinstance(value, TaskEnvironment):
            out.extend(value.tasks.values())
    return out


def tasks_in(module: ModuleType) -> dict[str, Task[..., Any]]:
    """The tasks a module defines or imports, by short name (and by ``env.task`` full name)."""
    found: dict[str, Task[..., Any]] = {}
    for t in _candidates(module):
        found.setdefault(t.name, t)
        found[t.full_name] = t
    return found


def find_task(module: ModuleType, name: str, *, source: str | None = None) -> Task[..., Any]:
    """The task called ``name`` (short or ``env.task``) in ``module``; LoadError lists the ones there are.

    A short name that tasks of two environments share is an error listing their full names, rather than the
    first one found: ``FILE f`` and ``FILE env.f`` never name different tasks without a word.
    """
    tasks = tasks_in(module)
    if "." not in name:
        full = sorted({t.full_name for t in _candidates(module) if t.name == name})
        if len(full) > 1:
            raise LoadError(
                f"{source or module.__name__}: task name {name!r} is ambiguous: {', '.join(full)} are all defined "
                "there; give the full name (env.task)"
            )
    task = tasks.get(name)
    if task is None:
        short = [n for n in tasks if "." not in n]
        # A short name two environments share only finds the first; list the full names too, so both are reachable.
        names = sorted({t.full_name if tasks[t.name] is not t else t.name for t in tasks.values()}) or ["(none)"]
        del short
        raise LoadError(f"{source or module.__name__}: no task named {name!r}; tasks defined: {', '.join(names)}")
    return task
