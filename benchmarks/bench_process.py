"""Process-isolated local tasks: 200 trivial tasks through a warm pool of 2 workers, 2 at a time, beside a fresh
``python -c pass`` per task, 2 at a time, measured in the same run.

    python benchmarks/bench_process.py
"""

from __future__ import annotations

import pickle
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

from flytelike._backends.local._process_pool import ProcessJob, ProcessPool

TASKS = 200
WORKERS = 2
TASK_FILE = textwrap.dedent(
    """
    import flytelike as fl

    env = fl.TaskEnvironment(name="bench")


    @env.task
    async def noop(i: int) -> int:
        return i
    """
)


async def _warm_pool(file: str) -> tuple[float, float]:
    """(pool start-up in ms, ms per task) for TASKS trivial jobs through a warm pool."""
    started = time.perf_counter()
    async with ProcessPool(WORKERS) as pool:
        startup = time.perf_counter() - started
        jobs = [
            ProcessJob(f"a{i}", "bench.noop", file=file, module=None, inputs=pickle.dumps({"i": i}))
            for i in range(TASKS)
        ]
        # One job per worker first, so the task file's import is not part of the steady-state figure.
        async with anyio.create_task_group() as tg:
            for job in jobs[:WORKERS]:
                tg.start_soon(pool.run, job)
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(pool.run, job)
        elapsed = time.perf_counter() - started
    return startup * 1000, elapsed / TASKS * 1000


async def _fresh_processes() -> float:
    """ms per task for TASKS fresh ``python -c pass`` processes, WORKERS at a time."""
    limit = anyio.Semaphore(WORKERS)

    async def one() -> None:
        async with limit:
            await anyio.run_process([sys.executable, "-c", "pass"])

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(TASKS):
            tg.start_soon(one)
    return (time.perf_counter() - started) / TASKS * 1000


async def _measure() -> list[tuple[str, float, str, str]]:
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-") as folder:
        file = Path(folder) / "bench_tasks.py"
        file.write_text(TASK_FILE)
        startup, per_task = await _warm_pool(str(file))
    baseline = await _fresh_processes()
    return [
        (
            f"process-isolated tasks (warm pool, {TASKS})",
            per_task,
            "ms/task",
            f"fresh python -c pass, {WORKERS} at a time: {baseline:.1f} ms/task",
        ),
        (f"warm pool start-up ({WORKERS} workers, once per run)", startup, "ms", ""),
    ]


def measure() -> list[tuple[str, float, str, str]]:
    """Rows of (name, value, unit, baseline measured in the same run), as ``run_all.py`` prints them."""
    return anyio.run(_measure)


if __name__ == "__main__":
    for name, value, unit, baseline in measure():
        print(f"{name}: {value:.2f} {unit}" + (f"   baseline {baseline}" if baseline else ""))
