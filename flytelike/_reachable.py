"""The tasks a task can call, found from its code: to check a whole run before anything starts, and to know
whether a task running elsewhere needs a way back to its controller."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from flytelike._task import Task

__all__ = ["reachable_tasks"]


def reachable_tasks(root: Task[..., Any]) -> list[Task[..., Any]]:
    """Tasks ``root`` can call, found from the names its code (and theirs) refers to.

    Used to refuse a run before anything starts when a task in it can never run where it would go.
    """
    seen: dict[int, Task[..., Any]] = {id(root): root}
    todo = [root]
    while todo:
        task = todo.pop()
        fn = task.fn
        names = set(_names(fn.__code__))
        scope = {**getattr(fn, "__globals__", {}), **_closure(fn)}
        for name in names:
            value = scope.get(name)
            if isinstance(value, Task) and id(value) not in seen:
                seen[id(value)] = value
                todo.append(value)
    return list(seen.values())


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _closure(fn: Any) -> dict[str, Any]:
    cells = getattr(fn, "__closure__", None) or ()
    out = {}
    for name, cell in zip(fn.__code__.co_freevars, cells, strict=False):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return out
