"""Retries with backoff, out-of-memory escalation, timeouts, cancellation (API and Ctrl-C) and the output cache,
through the public API and, for Ctrl-C, the ``flytelike run`` command."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

import flytelike as fl
from flytelike._config import load_settings
from flytelike._executor import ActionRecord, RunRecord, _run
from flytelike._loader import load_file
from flytelike._storage import RecordStore
from flytelike.errors import CancelledError, OutOfMemoryError, TaskFailedError, TaskTimeoutError

REPO = Path(__file__).resolve().parents[1]
MiB = 1024**2

env = fl.TaskEnvironment(name="policies")

CALLS: dict[str, int] = {}
SEEN: list[Any] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    SEEN.clear()


def count(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


def records() -> RecordStore:
    return RecordStore(load_settings().db_path)


def only_run() -> tuple[RunRecord, list[ActionRecord]]:
    with records() as store:
        [run] = store.runs()
        return run, store.actions(run.id)


_counter = itertools.count()


@pytest.fixture
def write_module(tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    """Write a task module to a file under a unique name and import it (as ``flytelike run`` would)."""
    names: list[str] = []

    def write(source: str) -> ModuleType:
        name = f"policy_tasks_{os.getpid()}_{next(_counter)}"
        names.append(name)
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return load_file(path)

    yield write
    for name in names:
        sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


# --- retries ---------------------------------------------------------------------------------------------------


@env.task(retries=fl.RetryPolicy(3, backoff="50ms"))
async def flaky(key: str, failures: int) -> int:
    attempt = count(key)
    SEEN.append(time.monotonic())
    if attempt <= failures:
        raise ConnectionError(f"transient failure {attempt}")
    return attempt


@env.task(retries=2)
async def always_fails() -> int:
    count("always")
    raise ValueError("broken for good")


def test_retry_then_success_with_backoff() -> None:
    started = time.monotonic()
    handle = fl.run(flaky, "k", 2)
    elapsed = time.monotonic() - started
    assert handle.outputs == 3
    assert CALLS["k"] == 3
    # Backoff of 50ms, doubling: 50ms before the first retry, 100ms before the second.
    first, second, third = SEEN
    assert second - first >= 0.05
    assert third - second >= 0.1
    assert elapsed >= 0.05 + 0.1
    run, [action] = only_run()
    assert run.state.value == "succeeded"
    assert (action.state.value, action.attempts) == ("succeeded", 3)


def test_retries_exhausted_fail_with_the_last_attempt() -> None:
    with pytest.raises(TaskFailedError) as caught:
        fl.run(always_fails)
    error = caught.value
    assert CALLS["always"] == 3
    assert error.attempt == 3
    assert "attempt 3/3" in str(error)
    assert "ValueError: broken for good" in str(error)
    assert isinstance(error.__cause__, ValueError)
    run, [action] = only_run()
    assert run.state.value == "failed"
    assert (action.state.value, action.attempts, action.error_type) == ("failed", 3, "ValueError")


# --- out of memory (process isolation) ---------------------------------------------------------------------------

HUNGRY = """
    import os
    import flytelike as fl

    env = fl.TaskEnvironment(name="hungry")


    def touch(mib: int) -> int:
        block = bytearray(mib * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return os.getpid()


    @env.task(
        resources=fl.Resources(memory="150Mi"),
        platform=fl.Local(process=True),
        retries=fl.RetryPolicy(2, oom_memory_multiplier=2, oom_memory_limit="600Mi"),
    )
    def escalates(mib: int = 200) -> int:
        return touch(mib)


    @env.task(resources=fl.Resources(memory="150Mi"), platform=fl.Local(process=True))
    def no_escalation(mib: int = 200) -> int:
        return touch(mib)
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory limits need Linux (/proc)")


@linux_only
def test_out_of_memory_then_escalated_memory_then_success(write_module: Callable[[str], ModuleType]) -> None:
    module = write_module(HUNGRY)
    handle = fl.run(module.escalates)
    assert handle.outputs != os.getpid()  # it ran in a child process
    run, [action] = only_run()
    assert run.state.value == "succeeded"
    assert action.state.value == "succeeded"
    assert action.attempts == 2
    assert action.memory == 300 * MiB  # 150Mi x 2 for the second attempt
    assert action.peak_memory is not None
    assert 200 * MiB <= action.peak_memory <= 300 * MiB


@linux_only
def test_out_of_memory_without_escalation_states_the_limit_and_the_peak(
    write_module: Callable[[str], ModuleType],
) -> None:
    module = write_module(HUNGRY)
    with pytest.raises(OutOfMemoryError) as caught:
        fl.run(module.no_escalation)
    message = str(caught.value)
    assert "hungry.no_escalation" in message
    assert "attempt 1/1" in message
    assert "memory limit of 150.0 MiB" in message
    assert "peak resident memory" in message
    run, [action] = only_run()
    assert run.state.value == "failed"
    assert (action.state.value, action.error_type) == ("failed", "OutOfMemoryError")
    assert action.peak_memory is not None


# --- timeouts ----------------------------------------------------------------------------------------------------


@env.task(timeout="200ms")
async def sleeps(seconds: float = 10.0) -> str:
    await asyncio.sleep(seconds)
    return "woke"


RELEASE = threading.Event()


@env.task(timeout="200ms")
def sleeps_in_a_thread(seconds: float = 10.0) -> str:
    RELEASE.wait(seconds)
    return "woke"


@env.task(timeout="200ms", retries=2)
async def slow_first_attempt(key: str) -> int:
    attempt = count(key)
    await asyncio.sleep(10 if attempt == 1 else 0.15)  # each attempt has its own 200ms
    return attempt


@env.task(timeout="200ms", retries=2)
async def always_slow() -> str:
    count("always_slow")
    await asyncio.sleep(10)
    return "never"


def test_timeout_cancels_the_task_and_records_it_timed_out() -> None:
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as caught:
        fl.run(sleeps)
    assert time.monotonic() - started < 2
    assert "policies.sleeps" in str(caught.value)
    assert "timed out" in str(caught.value)
    run, [action] = only_run()
    assert run.state.value == "failed"
    assert (action.state.value, action.error_type) == ("timed_out", "timeout")


def test_timeout_of_a_sync_task_ends_the_attempt_at_once() -> None:
    RELEASE.clear()
    started = time.monotonic()
    try:
        with pytest.raises(TaskTimeoutError):
            fl.run(sleeps_in_a_thread)
        assert time.monotonic() - started < 2
    finally:
        RELEASE.set()  # the thread itself cannot be interrupted; let it finish
    _, [action] = only_run()
    assert action.state.value == "timed_out"


def test_timeout_applies_per_attempt() -> None:
    handle = fl.run(slow_first_attempt, "k")
    assert handle.outputs == 2
    _, [action] = only_run()
    assert (action.state.value, action.attempts) == ("succeeded", 2)

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as caught:
        fl.run(always_slow)
    assert time.monotonic() - started < 2
    assert CALLS["always_slow"] == 3
    assert caught.value.attempt == 3
    assert "attempt 3/3" in str(caught.value)


# --- cancellation --------------------------------------------------------------------------------------------


@env.task
async def nap(i: int) -> int:
    try:
        await asyncio.sleep(30)
    finally:
        SEEN.append(i)  # the cancellation reached the running task
    return i


@env.task
async def wide_naps(n: int) -> int:
    return sum(await asyncio.gather(*(nap(i) for i in range(n))))


async def test_cancelling_run_async_aborts_the_run_and_its_running_actions() -> None:
    started = time.monotonic()
    with anyio.move_on_after(0.3) as scope:
        await fl.run_async(wide_naps, 5)
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2
    assert sorted(SEEN) == list(range(5))
    run, actions = only_run()
    assert run.state.value == "aborted"
    assert run.ended is not None
    assert [(a.id, a.state.value) for a in actions] == [("0", "aborted")] + [(f"0.{i}", "aborted") for i in range(5)]


def test_cancelling_the_live_run_raises_cancelled_error() -> None:
    async def cancel_soon(run: Any) -> None:
        await anyio.sleep(0.2)
        run.cancel()

    started = time.monotonic()
    with pytest.raises(CancelledError) as caught:
        fl.Runner(progress=cancel_soon).run(wide_naps, 3)
    assert time.monotonic() - started < 2
    assert caught.value.run_id is not None
    run, actions = only_run()
    assert run.id == caught.value.run_id
    assert run.state.value == "aborted"
    assert {a.state.value for a in actions} == {"aborted"}
    assert len(actions) == 4


async def test_runner_cancel_aborts_its_running_run() -> None:
    runner = fl.Runner()
    caught: list[CancelledError] = []

    async def run() -> None:
        try:
            await runner.run_async(wide_naps, 3)
        except CancelledError as e:
            caught.append(e)

    started = time.monotonic()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.sleep(0.2)
            runner.cancel()
    assert time.monotonic() - started < 2
    [error] = caught
    run, actions = only_run()
    assert run.id == error.run_id
    assert run.state.value == "aborted"
    assert [(a.id, a.state.value) for a in actions] == [("0", "aborted")] + [(f"0.{i}", "aborted") for i in range(3)]
    assert sorted(SEEN) == [0, 1, 2]


SLEEPY = """
    import asyncio
    import pathlib
    import time

    import flytelike as fl

    env = fl.TaskEnvironment(name="sleepy")


    @env.task
    async def nap(marker: str) -> str:
        pathlib.Path(marker).write_text("started")
        await asyncio.sleep(30)
        return "woke"


    @env.task
    def nap_in_a_thread(marker: str) -> str:
        pathlib.Path(marker).write_text("started")
        time.sleep(30)
        return "woke"


    @env.task
    async def main(marker: str) -> list[str]:
        return list(await asyncio.gather(nap(marker), nap(marker + ".2")))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
@pytest.mark.parametrize("task", ["main", "nap_in_a_thread"])
def test_ctrl_c_aborts_the_run_and_exits_130(tmp_path: Path, isolated_config: Path, task: str) -> None:
    file = tmp_path / "sleepy.py"
    file.write_text(textwrap.dedent(SLEEPY))
    marker = tmp_path / "marker"
    process = subprocess.Popen(
        [sys.executable, "-m", "flytelike", "run", "--no-progress", str(file), task, "--marker", str(marker)],
        cwd=REPO,
        env={**os.environ, "FLYTELIKE_HOME": str(isolated_config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start background jobs with SIGINT ignored; Python only turns it into KeyboardInterrupt if not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 15
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=10)
        assert time.monotonic() - sent < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "cancelled" in err
    run, actions = only_run()
    assert run.state.value == "aborted"
    assert actions
    assert {a.state.value for a in actions} == {"aborted"}


# --- cache -------------------------------------------------------------------------------------------------------


@env.task(cache=fl.Cache(ttl="1h"))
async def cached_square(x: int) -> int:
    count(f"square {x}")
    return x * x


@env.task
async def square_twice(x: int) -> int:
    return await cached_square(x) + await cached_square(x)


@env.task(cache=fl.Cache(ttl="1h", ignored_inputs=["verbose"]))
async def cached_with_ignored(x: int, verbose: bool = False) -> int:
    count(f"ignored {x}")
    return x + 1


@env.task(cache=fl.Cache(version="v1"))
async def versioned(x: int) -> int:
    count("versioned")
    return x


@env.task(cache=fl.Cache(ttl=1))
async def short_lived(x: int) -> int:
    count("short")
    return x


def states(run_id: str) -> list[tuple[str, str]]:
    with records() as store:
        return [(a.id, a.state.value) for a in store.actions(run_id)]


def test_cache_hit_within_a_run_and_across_runs() -> None:
    first = fl.run(square_twice, 4)
    assert first.outputs == 32
    assert CALLS == {"square 4": 1}
    assert states(first.id) == [("0", "succeeded"), ("0.0", "succeeded"), ("0.1", "cached")]

    second = fl.run(square_twice, 4)
    assert second.outputs == 32
    assert CALLS == {"square 4": 1}
    assert states(second.id) == [("0", "succeeded"), ("0.0", "cached"), ("0.1", "cached")]

    # Other inputs, other key.
    fl.run(cached_square, 5)
    assert CALLS == {"square 4": 1, "square 5": 1}


def test_ignored_inputs_do_not_change_the_key() -> None:
    assert fl.run(cached_with_ignored, 1, verbose=False).outputs == 2
    hit = fl.run(cached_with_ignored, 1, verbose=True)
    assert hit.outputs == 2
    assert CALLS == {"ignored 1": 1}
    assert states(hit.id) == [("0", "cached")]
    fl.run(cached_with_ignored, 2, verbose=True)
    assert CALLS == {"ignored 1": 1, "ignored 2": 1}


def test_a_new_cache_version_misses() -> None:
    fl.run(versioned, 1)
    fl.run(versioned, 1)
    assert CALLS["versioned"] == 1
    v2 = versioned.override(cache=fl.Cache(version="v2"))
    assert states(fl.run(v2, 1).id) == [("0", "succeeded")]
    assert CALLS["versioned"] == 2
    assert states(fl.run(v2, 1).id) == [("0", "cached")]
    assert states(fl.run(versioned, 1).id) == [("0", "cached")]
    assert CALLS["versioned"] == 2


def test_an_expired_entry_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    fl.run(short_lived, 1)
    assert states(fl.run(short_lived, 1).id) == [("0", "cached")]
    assert CALLS["short"] == 1

    real = time.time
    monkeypatch.setattr(_run.time, "time", lambda: real() + 2)  # past the 1 s TTL
    assert states(fl.run(short_lived, 1).id) == [("0", "succeeded")]
    assert CALLS["short"] == 2


CACHED_MODULE = """
    import flytelike as fl

    env = fl.TaskEnvironment(name="edited")
    CALLS = []


    @env.task(cache=fl.Cache(ttl="1h"))
    async def value(x: int) -> int:
        CALLS.append(x)
        return x
"""


def test_editing_the_task_module_changes_the_version(tmp_path: Path) -> None:
    path = tmp_path / "cache_edit_mod.py"
    path.write_text(textwrap.dedent(CACHED_MODULE))

    def reload() -> ModuleType:
        sys.modules.pop("cache_edit_mod", None)
        return load_file(path)

    try:
        module = reload()
        fl.run(module.value, 1)
        assert module.CALLS == [1]
        module = reload()  # same source: a hit
        fl.run(module.value, 1)
        assert module.CALLS == []
        path.write_text(path.read_text() + "# a comment changes the source, so the version\n")
        module = reload()
        handle = fl.run(module.value, 1)
        assert module.CALLS == [1]
        assert states(handle.id) == [("0", "succeeded")]
    finally:
        sys.modules.pop("cache_edit_mod", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
