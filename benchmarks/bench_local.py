"""Local runtime overhead: in-process fan-out and chains of trivial tasks, beside plain asyncio.

python benchmarks/bench_local.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

import flytelike as fl

FANOUT = 10_000
CHAIN = 1_000

env = fl.TaskEnvironment(name="bench")


@env.task
async def noop(x: int) -> int:
    return x


@env.task
async def fanout(n: int) -> int:
    return sum(await asyncio.gather(*(noop(i) for i in range(n))))


@env.task
async def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


async def _plain_noop(x: int) -> int:
    return x


async def _plain_fanout(n: int) -> int:
    return sum(await asyncio.gather(*(_plain_noop(i) for i in range(n))))


async def _plain_chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await _plain_noop(i)
    return total


def _best(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def measure() -> list[tuple[str, float, str, str]]:
    """(name, value, unit, baseline) rows."""
    os.environ.setdefault("FLYTELIKE_HOME", tempfile.mkdtemp(prefix="flytelike-bench-"))
    fl.run(fanout, 10)  # warm up imports and the records database
    rows = []
    plain = _best(lambda: asyncio.run(_plain_fanout(FANOUT))) / FANOUT * 1000
    ours = _best(lambda: fl.run(fanout, FANOUT)) / FANOUT * 1000
    rows.append((f"in-process fan-out, {FANOUT:,} subtasks", ours, "ms/subtask", f"plain asyncio {plain:.4f}"))
    plain = _best(lambda: asyncio.run(_plain_chain(CHAIN))) / CHAIN * 1000
    ours = _best(lambda: fl.run(chain, CHAIN)) / CHAIN * 1000
    rows.append((f"chain of {CHAIN:,} awaited subtasks", ours, "ms/subtask", f"plain asyncio {plain:.4f}"))
    return rows


if __name__ == "__main__":
    for name, value, unit, baseline in measure():
        print(f"{name}: {value:.4f} {unit}   ({baseline} {unit})", file=sys.stdout)
