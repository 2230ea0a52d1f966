"""Tasks called from a process-isolated task are child actions of the run, as from an in-process task: ids in call
order, records, retries, timeouts, cache, failures, nesting in other workers, and ``--with local:process=true``."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from module_files import module_writer

import flytelike as fl
from flytelike._config import load_settings
from flytelike._executor import ActionRecord, RunRecord
from flytelike._loader import load_file
from flytelike._storage import RecordStore
from flytelike.errors import TaskFailedError, TaskTimeoutError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker pool reads /proc (Linux only)")

REPO = Path(__file__).resolve().parents[1]

HEADER = """
import asyncio
import os
from pathlib import Path

import flytelike as fl

env = fl.TaskEnvironment(name="here")
iso = fl.TaskEnvironment(name="iso", platform=fl.Local(process=True))
"""


@pytest.fixture
def write_module(tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    """Write a task module (after a common header) under a unique name and import it, as ``flytelike run`` would."""
    with module_writer(tmp_path, HEADER, "children") as write:
        yield write


def runs() -> list[tuple[RunRecord, dict[str, ActionRecord]]]:
    """Every run recorded, oldest first, with its actions by id."""
    with RecordStore(load_settings().db_path) as store:
        return [(run, {a.id: a for a in store.actions(run.id)}) for run in reversed(store.runs())]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_gather_in_an_isolated_task_fans_out_to_child_actions_numbered_in_call_order(
    write_module: Callable[[str], ModuleType],
) -> None:
    m = write_module(
        """
        @env.task
        async def square(x: int, n: int) -> int:
            # Later calls finish first: ids must follow the order of the calls, not of completion.
            await asyncio.sleep((n - x) * 0.005)
            print(f"square {x} in {os.getpid()}")
            return x * x

        @iso.task
        async def fan(n: int) -> tuple[int, int]:
            return os.getpid(), sum(await asyncio.gather(*(square(i, n) for i in range(n))))
        """
    )
    pid, total = fl.run(m.fan, 20).outputs
    assert total == sum(i * i for i in range(20))
    assert pid != os.getpid()
    [(run, actions)] = runs()
    assert run.actions == 21
    assert sorted(actions) == sorted(["0", *(f"0.{i}" for i in range(20))])
    for i in range(20):
        child = actions[f"0.{i}"]
        assert (child.parent, child.task, child.state.value) == ("0", "here.square", "succeeded")
        # In-process children run in this process, not in the parent's worker.
        assert "".join(child.logs) == f"square {i} in {os.getpid()}\n"


def test_an_isolated_sync_task_calls_async_and_sync_children(write_module: Callable[[str], ModuleType]) -> None:
    m = write_module(
        """
        @env.task
        async def double(x: int) -> int:
            return 2 * x

        @env.task
        def inc(x: int) -> int:
            return x + 1

        @iso.task
        def both(x: int) -> list[int]:
            return [double(x), inc(x), double(inc(x))]

        @iso.task
        async def through_aio(x: int) -> int:
            return await inc.aio(x)
        """
    )
    assert fl.run(m.both, 5).outputs == [10, 6, 12]
    assert fl.run(m.through_aio, 1).outputs == 2
    (_, first), (_, second) = runs()
    assert {a: first[a].task for a in first} == {
        "0": "iso.both",
        "0.0": "here.double",
        "0.1": "here.inc",
        "0.2": "here.inc",
        "0.3": "here.double",
    }
    assert {a: second[a].task for a in second} == {"0": "iso.through_aio", "0.0": "here.inc"}


def test_isolated_children_of_isolated_tasks_run_in_other_workers_even_nested_deeper_than_the_pool(
    write_module: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One worker: a parent waiting for its children gives up its place in the pool, so nesting cannot deadlock.
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "1")
    m = write_module(
        """
        @iso.task
        def leaf() -> list[int]:
            return [os.getpid()]

        @iso.task
        async def middle() -> list[int]:
            return [os.getpid(), *await leaf.aio()]

        @iso.task
        def top() -> list[int]:
            return [os.getpid(), *middle()]
        """
    )
    pids = fl.run(m.top).outputs
    assert len(set(pids)) == 3
    assert os.getpid() not in pids
    [(_, actions)] = runs()
    assert {a: actions[a].task for a in actions} == {"0": "iso.top", "0.0": "iso.middle", "0.0.0": "iso.leaf"}
    assert all(a.state.value == "succeeded" for a in actions.values())


def test_with_local_process_isolates_every_task_of_a_fan_out() -> None:
    fanout = load_file(REPO / "examples" / "fanout.py")
    handle = fl.Runner(platform="local:process=true").run(fanout.main, n=50)
    assert handle.outputs == sum(i * i for i in range(50))
    [(run, actions)] = runs()
    assert run.actions == 51
    assert sorted(actions) == sorted(["0", *(f"0.{i}" for i in range(50))])
    assert all(a.state.value == "succeeded" and a.peak_memory for a in actions.values())


def test_a_failed_child_raises_task_failed_error_in_the_isolated_parent(
    write_module: Callable[[str], ModuleType],
) -> None:
    m = write_module(
        """
        @env.task
        async def broken(x: int) -> int:
            raise ValueError(f"no good: {x}")

        @iso.task
        async def careful() -> str:
            try:
                await broken(7)
            except fl.errors.TaskFailedError as e:
                return f"{type(e).__name__} {e.task} {e.action} {e.attempt} {e.cause_type}: {e}"
            return "no error"

        @iso.task
        def careless() -> int:
            return broken(8)
        """
    )
    caught = fl.run(m.careful).outputs
    assert caught.startswith("TaskFailedError here.broken 0.0 1 builtins.ValueError: ")
    assert "no good: 7" in caught
    with pytest.raises(TaskFailedError, match="no good: 8") as raised:
        fl.run(m.careless)
    # The isolated parent failed because its child did.
    assert (raised.value.task, raised.value.cause_type) == ("iso.careless", "flytelike.errors.TaskFailedError")
    (_, first), (_, second) = runs()
    assert (first["0"].state.value, first["0.0"].state.value) == ("succeeded", "failed")
    assert (second["0"].state.value, second["0.0"].state.value) == ("failed", "failed")


def test_a_child_of_an_isolated_task_is_retried(write_module: Callable[[str], ModuleType], tmp_path: Path) -> None:
    m = write_module(
        f"""
        COUNTER = Path({str(tmp_path / "attempts")!r})

        @env.task(retries=fl.RetryPolicy(1, backoff="10ms"))
        def flaky() -> int:
            COUNTER.write_text(str(attempt := int(COUNTER.read_text() or 0) + 1 if COUNTER.exists() else 1))
            if attempt == 1:
                raise ConnectionError("transient")
            return attempt

        @iso.task
        async def parent() -> int:
            return await flaky.aio()
        """
    )
    assert fl.run(m.parent).outputs == 2
    [(_, actions)] = runs()
    assert (actions["0.0"].state.value, actions["0.0"].attempts) == ("succeeded", 2)


def test_a_timeout_of_an_isolated_parent_cancels_its_children_and_kills_its_worker(
    write_module: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    m = write_module(
        f"""
        PIDS = Path({str(tmp_path)!r})

        @env.task
        async def nap() -> None:
            await asyncio.sleep(30)

        @iso.task
        def isolated_nap() -> None:
            (PIDS / "child.pid").write_text(str(os.getpid()))
            import time
            time.sleep(30)

        @iso.task(timeout="1s")
        async def parent() -> None:
            (PIDS / "parent.pid").write_text(str(os.getpid()))
            await asyncio.gather(nap(), nap(), isolated_nap.aio())
        """
    )
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        fl.run(m.parent)
    assert time.monotonic() - started < 10
    [(_, actions)] = runs()
    assert actions["0"].state.value == "timed_out"
    assert {a: actions[a].state.value for a in ("0.0", "0.1", "0.2")} == dict.fromkeys(("0.0", "0.1", "0.2"), "aborted")
    for name in ("parent.pid", "child.pid"):
        assert not alive(int((tmp_path / name).read_text())), name


def test_a_worker_that_dies_while_its_children_run_fails_its_action_and_aborts_them(
    write_module: Callable[[str], ModuleType],
) -> None:
    m = write_module(
        """
        @env.task
        async def assassin(pid: int) -> None:
            os.kill(pid, 9)
            await asyncio.sleep(30)

        @iso.task
        async def victim() -> None:
            await assassin(os.getpid())
        """
    )
    with pytest.raises(TaskFailedError, match=r"exited without replying \(killed by signal SIGKILL\)") as caught:
        fl.run(m.victim)
    assert caught.value.cause_type == "flytelike.errors.BackendError"
    [(_, actions)] = runs()
    assert (actions["0"].state.value, actions["0.0"].state.value) == ("failed", "aborted")


def test_a_call_the_isolated_task_stops_waiting_for_is_cancelled(write_module: Callable[[str], ModuleType]) -> None:
    m = write_module(
        """
        @env.task
        async def slow() -> int:
            await asyncio.sleep(30)
            return 1

        @env.task
        async def fast() -> int:
            return 2

        @iso.task
        async def impatient() -> int:
            try:
                return await asyncio.wait_for(slow(), 0.2)
            except TimeoutError:
                return await fast()
        """
    )
    assert fl.run(m.impatient).outputs == 2
    [(_, actions)] = runs()
    assert {a: actions[a].state.value for a in actions} == {"0": "succeeded", "0.0": "aborted", "0.1": "succeeded"}


def test_the_cache_of_a_child_of_an_isolated_task_hits_on_the_next_run(
    write_module: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    m = write_module(
        f"""
        LOG = Path({str(tmp_path / "computed")!r})

        @env.task(cache=True)
        async def expensive(x: int) -> int:
            with LOG.open("a") as f:
                f.write(f"{{x}}\\n")
            return x * 10

        @iso.task
        async def parent(x: int) -> int:
            return await expensive(x) + 1
        """
    )
    assert [fl.run(m.parent, 4).outputs for _ in range(2)] == [41, 41]
    assert (tmp_path / "computed").read_text() == "4\n"
    (_, first), (_, second) = runs()
    assert (first["0.0"].state.value, second["0.0"].state.value) == ("succeeded", "cached")


def test_an_override_called_in_an_isolated_task_runs_with_its_own_settings(
    write_module: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    m = write_module(
        f"""
        COUNTER = Path({str(tmp_path / "attempts")!r})

        @env.task
        def flaky() -> int:
            attempt = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
            COUNTER.write_text(str(attempt))
            if attempt == 1:
                raise ConnectionError("transient")
            return attempt

        @env.task
        def where() -> int:
            return os.getpid()

        @iso.task
        async def parent() -> tuple[int, int, int, int]:
            # Declared without retries: only the override's own template lets the child be retried.
            retried = await flaky.override(retries=1).aio()
            isolated = where.override(platform=fl.Local(process=True))
            return retried, os.getpid(), await where.aio(), await isolated.aio()
        """
    )
    retried, parent_pid, plain_pid, isolated_pid = fl.run(m.parent).outputs
    assert retried == 2
    assert plain_pid == os.getpid()
    assert len({parent_pid, plain_pid, isolated_pid}) == 3
    [(_, actions)] = runs()
    assert {a: (actions[a].task, actions[a].state.value) for a in actions} == {
        "0": ("iso.parent", "succeeded"),
        "0.0": ("here.flaky", "succeeded"),
        "0.1": ("here.where", "succeeded"),
        "0.2": ("here.where", "succeeded"),
    }
    assert actions["0.0"].attempts == 2
    # The variant has its own version; the declared task keeps its own.
    assert actions["0.1"].task_version != actions["0.2"].task_version
    assert actions["0.2"].peak_memory


def test_a_failed_child_carries_its_type_message_and_traceback_into_the_isolated_parent(
    write_module: Callable[[str], ModuleType],
) -> None:
    m = write_module(
        """
        class Custom(Exception):
            pass

        @env.task
        async def broken() -> int:
            raise Custom("deep trouble")

        @iso.task
        async def parent() -> list[str]:
            try:
                await broken()
            except fl.errors.TaskFailedError as e:
                return [type(e).__name__, e.cause_type, e.type_name, str(e), e.traceback_text]
            return []
        """
    )
    name, cause, type_name, message, tb = fl.run(m.parent).outputs
    assert name == "TaskFailedError"
    assert cause == f"{m.__name__}.Custom"
    assert type_name == "flytelike.errors.TaskFailedError"
    assert "deep trouble" in message
    assert 'raise Custom("deep trouble")' in tb


def test_an_isolated_parent_that_fails_is_reported_with_the_type_it_raised(
    write_module: Callable[[str], ModuleType],
) -> None:
    m = write_module(
        """
        @iso.task
        def fails() -> None:
            raise KeyError("missing")
        """
    )
    with pytest.raises(TaskFailedError, match="missing") as raised:
        fl.run(m.fails)
    assert raised.value.cause_type == "builtins.KeyError"
    [(_, actions)] = runs()
    assert actions["0"].error_type == "KeyError"
