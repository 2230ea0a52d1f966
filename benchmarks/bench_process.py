"""Process-isolated local tasks: a root task gathering 200 trivial ``fl.Local(process=True)`` children on 2 workers,
beside a ``multiprocessing.Pool(2)`` making the same 200 calls, one ``apply_async`` each.

    python benchmarks/bench_process.py

Both sides first make one warm-up call on each worker (repeated until every worker has answered), then time the 200
calls; the pool start-up is excluded from both. The flytelike side runs ``fl.run`` of a task file written to a temp
folder, in its own process with FLYTELIKE_LOCAL__WORKERS=2 and a fresh FLYTELIKE_HOME, timed inside the root task.
Best of ``REPEAT`` each, the sides taking turns. The start-up row is the time each side spends outside those timed
calls: for flytelike, the whole ``fl.run`` less the root task's own time (run set-up, starting and stopping the
worker pool, records); for the pool, ``Pool(2)``, the warm-up calls, ``close()`` and ``join()``.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _common
from _common import Row

TASKS = 200
WORKERS = 2
REPEAT = 3
TARGET = 3.0

TASK_FILE = textwrap.dedent(
    """
    import asyncio
    import json
    import os
    import sys
    import time

    import flytelike as fl

    env = fl.TaskEnvironment(name="bench-root")
    isolated = fl.TaskEnvironment(name="bench-isolated", platform=fl.Local(process=True))


    @isolated.task
    async def noop(i: int) -> int:
        return os.getpid()


    @env.task
    async def main(n: int, workers: int) -> dict[str, float]:
        started = time.perf_counter()
        pids: set[int] = set()
        rounds = 0
        while len(pids) < workers and rounds < 10:  # a warm-up call on each worker
            pids.update(await asyncio.gather(*(noop(-1) for _ in range(workers))))
            rounds += 1
        warm = time.perf_counter()
        await asyncio.gather(*(noop(i) for i in range(n)))
        done = time.perf_counter()
        return {"warm_up": warm - started, "calls": done - warm, "workers": len(pids), "root": done - started}


    if __name__ == "__main__":
        started = time.perf_counter()
        outputs = fl.run(main, int(sys.argv[1]), int(sys.argv[2])).outputs
        print(json.dumps({**outputs, "whole": time.perf_counter() - started}))
    """
)


def _noop(i: int) -> int:
    return os.getpid()


def _pool_once() -> tuple[float, float]:
    """(seconds for the calls, seconds outside them: Pool(2), warm-up, close and join)."""
    gc.collect()
    started = time.perf_counter()
    pool = multiprocessing.Pool(WORKERS)
    try:
        pids: set[int] = set()
        rounds = 0
        while len(pids) < WORKERS and rounds < 10:
            pids.update(r.get() for r in [pool.apply_async(_noop, (-1,)) for _ in range(WORKERS)])
            rounds += 1
        warm = time.perf_counter()
        results = [pool.apply_async(_noop, (i,)) for i in range(TASKS)]
        for r in results:
            r.get()
        done = time.perf_counter()
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    return done - warm, (warm - started) + (time.perf_counter() - done)


def _flytelike_once(file: Path, home: Path) -> dict[str, float]:
    env = _common.process_env(home, FLYTELIKE_LOCAL__WORKERS=str(WORKERS))
    done = subprocess.run(
        [sys.executable, str(file), str(TASKS), str(WORKERS)],
        env=env,
        cwd=file.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"task file exited {done.returncode}: {' '.join(done.stderr.strip().splitlines()[-3:])}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["workers"] < WORKERS:
        raise RuntimeError(f"warm-up reached {result['workers']:.0f} of {WORKERS} workers")
    return result


def process_isolated() -> list[Row]:
    """200 process-isolated trivial tasks vs multiprocessing.Pool(2)."""
    ours = ours_outside = pool = pool_outside = float("inf")
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-") as folder, _common.fresh_home() as home:
        file = Path(folder) / "bench_isolated.py"
        file.write_text(TASK_FILE)
        _flytelike_once(file, home)  # warm-up: bytecode, the records database
        for _ in range(REPEAT):
            calls, outside = _pool_once()
            pool, pool_outside = min(pool, calls), min(pool_outside, outside)
            result = _flytelike_once(file, home)
            ours = min(ours, result["calls"])
            ours_outside = min(ours_outside, result["whole"] - result["root"])
    per = f"{ours / TASKS * 1000:.2f} vs {pool / TASKS * 1000:.2f} ms per call"
    return [
        Row(
            f"{TASKS} process-isolated tasks, {WORKERS} workers",
            ours * 1000,
            "ms",
            pool * 1000,
            f"multiprocessing.Pool({WORKERS})",
            TARGET,
            note=f"inside the root task after a warm-up call per worker; best of {REPEAT}; {per}",
        ),
        Row(
            f"process pool start-up ({WORKERS} workers)",
            ours_outside * 1000,
            "ms",
            pool_outside * 1000,
            f"Pool({WORKERS}) + warm-up + close/join",
            note="flytelike: whole fl.run less the root task's own time (run set-up, pool start and stop, records)"
            f"; start method of the baseline pool: {multiprocessing.get_start_method()}",
        ),
    ]


MEASURES = [process_isolated]

if __name__ == "__main__":
    _common.main_for(MEASURES)
