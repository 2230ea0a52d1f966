"""``fl.map``: call a task once per item, with bounded concurrency, results in the order of the items.

Example:
    >>> import flytelike as fl
    >>> env = fl.TaskEnvironment(name="doc-map")
    >>> @env.task
    ... async def square(x: int) -> int:
    ...     return x * x
    >>> @env.task
    ... async def squares(n: int) -> list[int]:
    ...     return await fl.map(square, range(n), concurrency=2)
    >>> fl.run(squares, 4).outputs
    [0, 1, 4, 9]
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from flytelike._task import Task
from flytelike.errors import SpecError

__all__ = ["map"]


async def map(
    task: Task[..., Any],
    /,
    *iterables: Iterable[Any],
    concurrency: int = 0,
    return_exceptions: bool = False,
) -> list[Any]:
    """Call ``task`` with one item of each iterable at a time (like the builtin ``map``) and await all the calls.

    Inside a run every call is a child action, started in the order of the items (so their ids follow it); outside
    a run the task's function is called. Sync and async tasks both work.

    Args:
        task: the task to call.
        iterables: the inputs, one iterable per positional parameter; the shortest ends the calls.
        concurrency: at most this many calls run at the same time; ``0`` (default): all of them.
        return_exceptions: put a failed call's exception in its place in the results instead of raising it. When
            ``False``, the first failure cancels the calls still running and is raised.

    Returns:
        The results, in the order of the items.

    Raises:
        SpecError: ``task`` is not a task, no iterable was given, or ``concurrency`` is not a whole number >= 0.
    """
    if not isinstance(task, Task):
        raise SpecError("map.task", task, "not a task", accepted="fl.map(my_task, items)")
    if not iterables:
        raise SpecError("map.iterables", (), "nothing to map over", accepted="fl.map(my_task, items)")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
        raise SpecError("map.concurrency", concurrency, "must be a whole number >= 0", accepted="8, or 0 for all")
    if not isinstance(return_exceptions, bool):
        raise SpecError("map.return_exceptions", return_exceptions, "must be True or False", accepted="True")
    calls = list(zip(*iterables, strict=False))
    if not calls:
        return []
    slots = asyncio.Semaphore(concurrency) if concurrency else None

    async def one(args: tuple[Any, ...]) -> Any:
        if slots is None:
            return await task.aio(*args)
        async with slots:  # FIFO: calls start, and get their action ids, in the order of the items
            return await task.aio(*args)

    pending = [asyncio.ensure_future(one(args)) for args in calls]
    try:
        return list(await asyncio.gather(*pending, return_exceptions=return_exceptions))
    finally:
        for future in pending:  # after a failure, the calls still running are stopped rather than left behind
            if not future.done():
                future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
