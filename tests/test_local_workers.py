"""[local] workers: bounded by what this machine can hold."""

from __future__ import annotations

import time

import pytest

import flytelike as fl
from flytelike._backends.local._backend import WORKER_MEMORY, pool_size
from flytelike._backends.local._capacity import Capacity
from flytelike._config import load_settings
from flytelike._runner import Runner

GiB = 1024**3


@pytest.mark.parametrize(
    ("configured", "capacity", "expected"),
    [
        (None, Capacity(4000, 16 * GiB, 0), 4),
        (32, Capacity(4000, 16 * GiB, 0), 4),
        (2, Capacity(4000, 16 * GiB, 0), 2),
        (32, Capacity(64_000, 3 * WORKER_MEMORY, 0), 3),
        (None, Capacity(500, 16 * GiB, 0), 1),
        (8, Capacity(8000, 0, 0), 8),  # memory unknown: cores only
    ],
)
def test_the_pool_is_bounded_by_the_machine(configured: int | None, capacity: Capacity, expected: int) -> None:
    assert pool_size(configured, capacity) == expected


env = fl.TaskEnvironment(name="workers-bound", platform=fl.Local(process=True))


@env.task
def one() -> int:
    return 1


def test_workers_32_does_not_start_32_processes() -> None:
    runner = Runner(settings=load_settings(local={"workers": 32}))
    start = time.monotonic()
    assert runner.run(one).outputs == 1
    assert time.monotonic() - start < 5  # 32 interpreters took 5.4 s to start before the first task


async def test_workers_start_when_jobs_first_need_them() -> None:
    from flytelike._backends.local._process_pool import ProcessPool

    async with ProcessPool(4, prestart=1) as pool:
        assert len(pool._workers) == 1  # not 4 interpreters up front
        first = await pool._checkout()  # a job takes the warm one; a second job at once starts a worker of its own
        second = await pool._checkout()
        assert first is not second
        assert len(pool._workers) == 2
        pool._idle.extend((first, second))
