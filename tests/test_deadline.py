"""Timeout(deadline=...): a bound on the whole action, across admission, attempts and the waits between them."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import flytelike as fl
from flytelike._config import load_settings
from flytelike._runtime import Runtime
from flytelike._storage import RecordStore
from flytelike.errors import TaskTimeoutError

env = fl.TaskEnvironment(name="deadlines")
ATTEMPTS: list[int] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    ATTEMPTS.clear()


@env.task(retries=10, timeout=fl.Timeout("10s", deadline="600ms"))
async def flaky() -> int:
    ATTEMPTS.append(fl.ctx().attempt)
    await asyncio.sleep(0.25)
    raise ValueError("not yet")


@env.task(timeout=fl.Timeout(deadline=30))
async def quick() -> int:
    return 7


def test_the_deadline_ends_the_action_across_retries() -> None:
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        fl.run(flaky)
    elapsed = time.monotonic() - start
    assert elapsed < 3, elapsed
    assert 2 <= len(ATTEMPTS) <= 3  # each attempt would get 10 s; the deadline stops the retries
    assert "deadline of 0.6s passed" in str(info.value)
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
        [action] = store.actions(run.id)
    assert (action.state.value, action.error_type, action.failure_kind) == ("timed_out", "timeout", "timeout")


def test_a_deadline_emits_timed_out_and_never_aborted() -> None:
    states: list[str] = []

    async def main() -> None:
        async with Runtime() as runtime:
            handle = await runtime.start(flaky)
            events = handle.events()
            async for event in events:
                if event.action == "0":
                    states.append(event.state.value)
            with pytest.raises(TaskTimeoutError):
                await handle.result()

    asyncio.run(main())
    assert states[-1] == "timed_out"
    assert "aborted" not in states


def test_an_action_within_its_deadline_succeeds() -> None:
    assert fl.run(quick).outputs == 7


def test_timeout_takes_a_deadline_alone_or_with_max_runtime() -> None:
    assert fl.Timeout(deadline="1h").max_runtime is None
    assert fl.Timeout("5m", deadline="1h").deadline == timedelta(hours=1)
    with pytest.raises(fl.SpecError) as info:
        fl.Timeout()
    assert info.value.field == "Timeout.max_runtime"
    with pytest.raises(fl.SpecError) as zero:
        fl.Timeout(deadline=0)
    assert zero.value.field == "Timeout.deadline"
