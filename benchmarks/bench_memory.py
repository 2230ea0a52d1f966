"""Peak memory of a 100,000-way fan-out: ``fl.run`` of a task gathering 100,000 trivial subtasks beside plain asyncio
gathering 100,000 trivial coroutines, each side in a fresh process of its own.

    python benchmarks/bench_memory.py

Each side reports its ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (so the flytelike side includes importing
flytelike) and the wall time of its ``fl.run`` / ``asyncio.run``. The plain side does not import flytelike; both
import the benchmarks' small ``_common`` module.
``python benchmarks/bench_memory.py --side plain|flytelike`` runs one side and prints its JSON.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time

import _common
from _common import Row

N = 100_000
TARGET = 1.5


async def _plain_noop(x: int) -> int:
    return x


async def _plain_fanout(n: int) -> int:
    return len(await asyncio.gather(*(_plain_noop(i) for i in range(n))))


def _side(side: str) -> None:
    if side == "plain":
        start = time.perf_counter()
        count = asyncio.run(_plain_fanout(N))
    else:
        import _tasks  # imports flytelike, on this side only

        import flytelike as fl

        start = time.perf_counter()
        count = fl.run(_tasks.main, N).outputs
    wall = time.perf_counter() - start
    if count != N:
        raise SystemExit(f"{side}: {count} of {N} subtasks finished")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"maxrss_kib": rss_kib, "wall": wall}))


def _measure_side(side: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--side", side],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{side} side exited {done.returncode}: {' '.join(done.stderr.strip().splitlines()[-3:])}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def memory() -> list[Row]:
    """Peak RSS of a 100,000-way fan-out vs plain asyncio."""
    with _common.fresh_home() as home:
        env = _common.process_env(home)
        plain = _measure_side("plain", env)
        ours = _measure_side("flytelike", env)
    return [
        Row(
            f"peak RSS, {N:,}-way fan-out",
            ours["maxrss_kib"] / 1024,
            "MiB",
            plain["maxrss_kib"] / 1024,
            "plain asyncio",
            TARGET,
            note="ru_maxrss of a fresh process per side; the flytelike side includes importing flytelike",
        ),
        Row(
            f"wall time, {N:,}-way fan-out",
            ours["wall"] * 1000,
            "ms",
            plain["wall"] * 1000,
            "plain asyncio",
            note="whole fl.run (set-up and record writes included) vs asyncio.run, in the same processes",
        ),
    ]


MEASURES = [memory]

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--side":
        _side(sys.argv[2])
    else:
        _common.main_for(MEASURES)
