"""In-process overhead: a 10,000-way fan-out and a chain of 1,000 awaited subtasks, beside plain asyncio in this
same process.

    python benchmarks/bench_local.py

Each side is measured ``REPEAT`` times, the sides taking turns, ``gc.collect()`` before each; the best is kept.
Two figures per shape:

- inside the root task: ``time.perf_counter()`` around the gather (or the loop) in an already running root task,
  beside the same code in an already running ``asyncio`` loop. This is the executor's cost per subtask, and the
  figure held to the target.
- whole ``fl.run``: also the run's set-up and its record writes (the run and each action in the records database),
  beside the whole ``asyncio.run`` of the plain coroutine.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from typing import Any

import _common
import _tasks
from _common import Row

import flytelike as fl

FANOUT = 10_000
CHAIN = 1_000
REPEAT = 5
TARGET = 3.0

TimedTask = fl.Task[[int], Coroutine[Any, Any, float]]
TimedPlain = Callable[[int], Coroutine[Any, Any, float]]


async def _plain_noop(x: int) -> int:
    return x


async def _plain_fanout(n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(_plain_noop(i) for i in range(n)))
    return time.perf_counter() - start


async def _plain_chain(n: int) -> float:
    """One ``asyncio.Task`` per step, each awaited before the next is made."""
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        await asyncio.create_task(_plain_noop(i))
    return time.perf_counter() - start


def _compare(task: TimedTask, plain: TimedPlain, n: int) -> tuple[float, float, float, float]:
    """Best (ours inside, plain inside, ours whole, plain whole), in seconds."""
    ours_in = plain_in = ours_whole = plain_whole = float("inf")
    fl.run(task, 100)  # warm-up: imports, the records database
    asyncio.run(plain(100))
    for _ in range(REPEAT):
        gc.collect()
        start = time.perf_counter()
        inside = asyncio.run(plain(n))
        plain_whole = min(plain_whole, time.perf_counter() - start)
        plain_in = min(plain_in, inside)

        gc.collect()
        start = time.perf_counter()
        handle = fl.run(task, n)
        ours_whole = min(ours_whole, time.perf_counter() - start)
        ours_in = min(ours_in, handle.outputs)
    return ours_in, plain_in, ours_whole, plain_whole


def _rows(label: str, n: int, task: TimedTask, plain: TimedPlain, plain_label: str) -> list[Row]:
    with _common.fresh_home():
        ours_in, plain_in, ours_whole, plain_whole = _compare(task, plain, n)
    per = f"{ours_in / n * 1e6:.1f} vs {plain_in / n * 1e6:.1f} µs per subtask"
    return [
        Row(
            f"{label}, inside root task",
            ours_in * 1000,
            "ms",
            plain_in * 1000,
            plain_label,
            TARGET,
            note="perf_counter around it inside the running root task (all the executor does for those subtasks"
            f" while it runs, not the run's set-up or end) / inside a running loop; best of {REPEAT}; {per}",
        ),
        Row(
            f"{label}, whole fl.run",
            ours_whole * 1000,
            "ms",
            plain_whole * 1000,
            f"asyncio.run of {plain_label}",
            note=f"includes run set-up and record writes; best of {REPEAT}",
        ),
    ]


def fanout() -> list[Row]:
    """In-process fan-out of 10,000 trivial subtasks."""
    return _rows(f"fan-out {FANOUT:,} subtasks", FANOUT, _tasks.timed_fanout, _plain_fanout, "plain asyncio.gather")


def chain() -> list[Row]:
    """Chain of 1,000 awaited subtasks."""
    return _rows(f"chain {CHAIN:,} awaited subtasks", CHAIN, _tasks.timed_chain, _plain_chain, "asyncio.Task per step")


MEASURES = [fanout, chain]

if __name__ == "__main__":
    _common.main_for(MEASURES)
