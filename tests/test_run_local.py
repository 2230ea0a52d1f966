"""Running task graphs on this machine through the public API: ``fl.run`` / ``fl.run_async``.

Async tasks run in-process, sync tasks in a worker thread; fan-out, chains and nesting create actions with
deterministic ids; values are validated at every task boundary; failures name the task, action and attempt; and
every run, action, input, output and line printed lands in the run records.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from typing import Any

import pytest

import flytelike as fl
from flytelike._config import load_settings
from flytelike._storage import RecordStore
from flytelike.errors import SpecError, TaskFailedError, ValueConversionError

env = fl.TaskEnvironment(name="local")

# Observations made by task bodies (module level, so the tasks are plain module functions).
SEEN: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    SEEN.clear()


def records() -> RecordStore:
    """The run records under this test's FLYTELIKE_HOME (set by conftest's autouse fixture)."""
    return RecordStore(load_settings().db_path)


def actions_of(run_id: str) -> list[Any]:
    with records() as store:
        return store.actions(run_id)


# --- tasks ---------------------------------------------------------------------------------------------------


@env.task
async def add(x: int, y: int = 1) -> int:
    return x + y


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def fan_out(n: int) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))


@env.task
async def echo(x: int) -> int:
    # Finish in a scrambled order, so that ids can only follow the order of calls, not of completion.
    await asyncio.sleep(random.random() / 100)
    print(f"echo {x}")
    return x


@env.task
async def reversed_calls(n: int) -> list[int]:
    return list(await asyncio.gather(*(echo(i) for i in reversed(range(n)))))


@env.task
async def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total = await add(total, i)
    return total


@env.task
async def level3(x: int) -> int:
    await asyncio.sleep(0)  # a real suspension, so siblings interleave
    return x + 3


@env.task
async def level2(x: int) -> int:
    return await level3(x) + 2


@env.task
async def level1(x: int) -> int:
    return await level2(x) + 1


@env.task
async def graph() -> int:
    """A fan-out of nested calls, then a chain: the same calls in the same order, so the same ids every run."""
    firsts = await asyncio.gather(*(level1(i) for i in range(3)))
    return sum(firsts) + await chain(3)


@env.task
def sync_double(x: int) -> int:
    SEEN.setdefault("sync_threads", []).append(threading.get_ident())
    return 2 * x


@env.task
async def calls_sync_with_aio(x: int) -> int:
    SEEN["loop_thread"] = threading.get_ident()
    return await sync_double.aio(x)


@env.task
async def calls_sync_without_await(x: int) -> str:
    try:
        sync_double(x)
    except SpecError as e:
        return str(e)
    return "no error"


@env.task
def sync_parent(x: int) -> int:
    SEEN["sync_parent_thread"] = threading.get_ident()
    # From a worker thread a sync task calls other tasks, sync or async, directly and blocks for their results.
    return sync_double(x) + add(x)  # type: ignore[operator]


@env.task
async def boom(x: int) -> int:
    raise KeyError(f"no value for {x}")


@env.task
async def calls_boom(x: int) -> int:
    try:
        return await boom(x)
    except TaskFailedError as e:
        SEEN["child_error"] = e
        raise


@env.task
async def wrong_input_type() -> str:
    try:
        await add("three")  # type: ignore[arg-type]
    except ValueConversionError as e:
        return str(e)
    return "no error"


@env.task
async def wrong_output_type() -> int:
    return "not an int"  # type: ignore[return-value]


@env.task
async def chatty(tag: str, lines: int) -> str:
    for i in range(lines):
        print(f"{tag} line {i}")
        await asyncio.sleep(0.001)  # let the other task print in between
    return tag


@env.task
def chatty_sync(tag: str, lines: int) -> str:
    for i in range(lines):
        print(f"{tag} line {i}")
        time.sleep(0.001)
    return tag


@env.task
async def two_chatty() -> list[str]:
    return list(
        await asyncio.gather(chatty("alpha", 20), chatty("beta", 20), chatty_sync.aio("gamma", 20)),
    )


@env.task
async def describe(name: str, sizes: list[int], scale: float = 0.5) -> dict[str, float]:
    return {name: sum(sizes) * scale}


# --- running -------------------------------------------------------------------------------------------------


def test_run_an_async_task() -> None:
    handle = fl.run(add, 2, y=5)
    assert handle.outputs == 7
    assert handle.state == "succeeded"
    assert handle.task == "local.add"
    with records() as store:
        run = store.run(handle.id)
        assert run is not None
        assert run.state.value == "succeeded"
        assert run.actions == 1
        [root] = store.actions(handle.id)
    assert (root.id, root.parent, root.task, root.state.value, root.attempts) == (
        "0",
        None,
        "local.add",
        "succeeded",
        1,
    )
    assert root.started is not None
    assert root.ended is not None
    assert root.ended >= root.started


def test_a_task_outside_a_run_is_a_plain_function() -> None:
    assert asyncio.run(add(1, 2)) == 3
    assert sync_double(4) == 8
    with records() as store:
        assert store.runs() == []


def test_sync_tasks_run_in_a_worker_thread() -> None:
    assert fl.run(calls_sync_with_aio, 21).outputs == 42
    [worker] = SEEN["sync_threads"]
    assert worker != SEEN["loop_thread"]

    # As the root of a run, too: not on the thread running the event loop (here, the main thread).
    SEEN.clear()
    assert fl.run(sync_double, 4).outputs == 8
    assert SEEN["sync_threads"][0] != threading.get_ident()


def test_nesting_three_levels() -> None:
    handle = fl.run(level1, 10)
    assert handle.outputs == 16
    got = [(a.id, a.parent, a.task, a.state.value) for a in actions_of(handle.id)]
    assert got == [
        ("0", None, "local.level1", "succeeded"),
        ("0.0", "0", "local.level2", "succeeded"),
        ("0.0.0", "0.0", "local.level3", "succeeded"),
    ]


def test_fan_out_of_10000_children_is_recorded_action_by_action() -> None:
    n = 10_000
    handle = fl.run(fan_out, n)
    assert handle.outputs == sum(i * i for i in range(n))
    assert handle.record.actions == n + 1
    recorded = actions_of(handle.id)
    assert len(recorded) == n + 1
    root, children = recorded[0], recorded[1:]
    assert (root.id, root.task, root.state.value) == ("0", "local.fan_out", "succeeded")
    assert [c.id for c in children] == [f"0.{i}" for i in range(n)]
    assert {c.parent for c in children} == {"0"}
    assert {c.task for c in children} == {"local.square"}
    assert {c.state.value for c in children} == {"succeeded"}


def test_action_ids_follow_the_order_of_calls() -> None:
    handle = fl.run(reversed_calls, 12)
    assert handle.outputs == list(reversed(range(12)))
    with records() as store:
        # Child 0.k was the k-th call, whose input was 11 - k, whatever order the children finished in.
        for k in range(12):
            assert store.logs(handle.id, f"0.{k}") == f"echo {11 - k}\n"


def test_a_chain_runs_one_child_after_the_other() -> None:
    handle = fl.run(chain, 20)
    assert handle.outputs == sum(range(20))
    children = actions_of(handle.id)[1:]
    assert [c.id for c in children] == [f"0.{i}" for i in range(20)]
    for before, after in itertools.pairwise(children):
        assert before.ended is not None
        assert after.started is not None
        assert before.ended <= after.started


def test_action_ids_are_deterministic_across_runs() -> None:
    first = fl.run(graph)
    second = fl.run(graph)
    assert first.id != second.id
    assert first.outputs == second.outputs == sum(i + 6 for i in range(3)) + 3
    shapes = [[(a.id, a.task) for a in actions_of(h.id)] for h in (first, second)]
    assert shapes[0] == shapes[1]
    nested = [(f"0.{i}{'.0' * depth}", f"local.level{depth + 1}") for i in range(3) for depth in range(3)]
    chained = [("0.3", "local.chain"), *((f"0.3.{i}", "local.add") for i in range(3))]
    assert shapes[0] == [("0", "local.graph"), *nested, *chained]


def test_calling_a_child_with_a_wrong_type_names_the_task_and_input() -> None:
    message = fl.run(wrong_input_type).outputs
    assert "local.add(x)" in message
    assert "'three'" in message
    # The child never started: only the parent was recorded.
    with records() as store:
        assert store.runs()[0].actions == 1

    with pytest.raises(ValueConversionError, match=r"local\.add\(x\)"):
        fl.run(add, "three")


def test_a_task_returning_the_wrong_type_fails_naming_the_output() -> None:
    with pytest.raises(TaskFailedError) as caught:
        fl.run(wrong_output_type)
    message = str(caught.value)
    assert "local.wrong_output_type -> o0" in message
    assert isinstance(caught.value.__cause__, ValueConversionError)


def test_an_exception_in_a_child_surfaces_in_the_parent() -> None:
    with pytest.raises(TaskFailedError) as caught:
        fl.run(calls_boom, 7)

    child_error = SEEN["child_error"]
    assert isinstance(child_error, TaskFailedError)
    assert (child_error.task, child_error.action, child_error.attempt) == ("local.boom", "0.0", 1)
    assert "local.boom" in str(child_error)
    assert "action 0.0" in str(child_error)
    assert "attempt 1/1" in str(child_error)
    assert isinstance(child_error.__cause__, KeyError)
    assert child_error.__cause__.args == ("no value for 7",)

    root_error = caught.value
    assert (root_error.task, root_error.action, root_error.attempt) == ("local.calls_boom", "0", 1)
    # The user's exception is the root error's own cause (not two levels down), and the message leads with it.
    assert root_error.__cause__ is child_error.__cause__
    assert (root_error.origin_task, root_error.origin_action) == ("local.boom", "0.0")
    assert (root_error.cause_type, root_error.cause) == ("builtins.KeyError", "KeyError: 'no value for 7'")
    assert str(root_error).endswith("failed: KeyError: 'no value for 7' (raised in task local.boom, action 0.0)")
    assert root_error.run_id is not None

    with records() as store:
        run = store.run(root_error.run_id)
        assert run is not None
        assert run.state.value == "failed"
        assert run.error == str(root_error)
        root, child = store.actions(root_error.run_id)
    assert (root.state.value, child.state.value) == ("failed", "failed")
    assert child.error_type == "KeyError"
    assert child.error is not None
    assert "no value for 7" in child.error
    assert "Traceback" in child.error


async def test_run_async_inside_a_running_loop() -> None:
    loop_thread = threading.get_ident()
    handle = await fl.run_async(calls_sync_with_aio, 5)
    assert handle.outputs == 10
    assert SEEN["loop_thread"] == loop_thread
    assert SEEN["sync_threads"][0] != loop_thread
    with records() as store:
        run = store.run(handle.id)
    assert run is not None
    assert run.state.value == "succeeded"


def test_calling_a_sync_task_without_await_from_async_code_suggests_aio() -> None:
    message = fl.run(calls_sync_without_await, 1).outputs
    assert "await sync_double.aio(...)" in message
    assert "sync_threads" not in SEEN  # it did not run


def test_await_aio_of_a_sync_task() -> None:
    handle = fl.run(calls_sync_with_aio, 3)
    assert handle.outputs == 6
    assert [(a.id, a.task) for a in actions_of(handle.id)] == [
        ("0", "local.calls_sync_with_aio"),
        ("0.0", "local.sync_double"),
    ]


def test_a_sync_task_calls_another_task_from_its_worker_thread() -> None:
    handle = fl.run(sync_parent, 5)
    assert handle.outputs == 10 + 6
    assert SEEN["sync_parent_thread"] != threading.get_ident()
    assert [(a.id, a.parent, a.task, a.state.value) for a in actions_of(handle.id)] == [
        ("0", None, "local.sync_parent", "succeeded"),
        ("0.0", "0", "local.sync_double", "succeeded"),
        ("0.1", "0", "local.add", "succeeded"),
    ]


def test_printed_output_is_captured_per_action(capsys: pytest.CaptureFixture[str]) -> None:
    handle = fl.run(two_chatty)
    assert handle.outputs == ["alpha", "beta", "gamma"]
    with records() as store:
        by_action = {
            tag: store.logs(handle.id, aid) for tag, aid in (("alpha", "0.0"), ("beta", "0.1"), ("gamma", "0.2"))
        }
        assert store.logs(handle.id, "0") == ""
    for tag, text in by_action.items():
        assert text == "".join(f"{tag} line {i}\n" for i in range(20))
    # Still printed as usual, interleaved.
    out = capsys.readouterr().out
    assert "alpha line 19" in out
    assert "gamma line 0" in out


def test_inputs_and_outputs_are_recorded_as_json() -> None:
    handle = fl.run(describe, "total", [1, 2, 3])
    assert handle.outputs == {"total": 3.0}
    with records() as store:
        run = store.run(handle.id)
    assert run is not None
    assert json.loads(run.inputs_json) == {"name": "total", "sizes": [1, 2, 3], "scale": 0.5}
    assert run.outputs_json is not None
    assert json.loads(run.outputs_json) == {"o0": {"total": 3.0}}


def test_runs_are_listed_newest_first() -> None:
    first = fl.run(add, 1)
    second = fl.run(add, 2)
    with records() as store:
        assert [r.id for r in store.runs()] == [second.id, first.id]


envs = fl.TaskEnvironment(name="envs", env_vars={"FLT_TEST_CACHE_DIR": "/cache", "FLT_TEST_MODE": "a"})
other = fl.TaskEnvironment(name="other", env_vars={"FLT_TEST_MODE": "b"})


@envs.task
async def read_env() -> dict[str, str]:
    env = fl.ctx().env
    return {k: env.get(k, "<unset>") for k in ("FLT_TEST_CACHE_DIR", "FLT_TEST_MODE")}


@other.task
async def other_mode() -> str:
    return fl.ctx().env["FLT_TEST_MODE"]


@envs.task
async def both() -> dict[str, str]:
    mode = await other_mode()
    return {**await read_env(), "other": mode}


def test_env_vars_reach_in_process_tasks_through_their_context_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("FLT_TEST_CACHE_DIR", raising=False)
    monkeypatch.delenv("FLT_TEST_MODE", raising=False)
    before = dict(os.environ)
    assert fl.run(read_env).outputs == {"FLT_TEST_CACHE_DIR": "/cache", "FLT_TEST_MODE": "a"}
    assert dict(os.environ) == before  # the process environment is never changed by a run


def test_in_process_tasks_each_see_their_own_env_vars() -> None:
    outputs = fl.run(both).outputs
    assert outputs == {"FLT_TEST_CACHE_DIR": "/cache", "FLT_TEST_MODE": "a", "other": "b"}


def test_ctx_outside_a_run_is_a_clear_error() -> None:
    with pytest.raises(fl.errors.FlytelikeError, match="only available inside a running task"):
        fl.ctx()
