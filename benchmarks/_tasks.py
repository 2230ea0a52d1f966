"""Trivial tasks the benchmarks run: fan-outs and a chain, each able to time itself from inside its root task.

flytelike run --no-progress benchmarks/_tasks.py main --n 100000
"""

from __future__ import annotations

import asyncio
import gc
import time

import flytelike as fl

env = fl.TaskEnvironment(name="bench")


@env.task
async def noop(x: int) -> int:
    return x


@env.task
async def main(n: int = 100_000) -> int:
    """A fan-out of ``n`` trivial subtasks; returns how many finished."""
    return len(await asyncio.gather(*(noop(i) for i in range(n))))


@env.task
async def timed_fanout(n: int) -> float:
    """Seconds the gather of ``n`` trivial subtasks takes, timed inside this (already running) root task."""
    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(noop(i) for i in range(n)))
    return time.perf_counter() - start


@env.task
async def timed_chain(n: int) -> float:
    """Seconds ``n`` trivial subtasks awaited one after another take, timed inside this root task."""
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        await noop(i)
    return time.perf_counter() - start
