"""fl.map, fl.group and Runner.with_context: the helpers a Flyte 2 user writes daily."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

import flytelike as fl
from flytelike._cli._runs import runs
from flytelike._config import load_settings
from flytelike._storage import RecordStore

env = fl.TaskEnvironment(name="helpers")
RUNNING: list[int] = []
PEAK: list[int] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNNING.clear()
    PEAK.clear()


@env.task
async def square(x: int) -> int:
    RUNNING.append(x)
    PEAK.append(len(RUNNING))
    await asyncio.sleep(0.01 * (5 - x % 5))  # later items finish first
    RUNNING.remove(x)
    return x * x


@env.task
def add(x: int, y: int) -> int:
    return x + y


@env.task
async def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    await asyncio.sleep(0.05)
    return x


@env.task
async def mapped(n: int, concurrency: int = 0) -> list[int]:
    return await fl.map(square, range(n), concurrency=concurrency)


@env.task
async def mapped_pairs() -> list[int]:
    return await fl.map(add, [1, 2, 3], [10, 20, 30])


@env.task
async def mapped_failures() -> list[str]:
    results = await fl.map(fails_on_three, range(5), return_exceptions=True)
    return [type(r).__name__ if isinstance(r, BaseException) else str(r) for r in results]


@env.task
async def mapped_failing() -> list[int]:
    return await fl.map(fails_on_three, range(5))


def actions(run_id: str) -> list:  # type: ignore[type-arg]
    with RecordStore(load_settings().db_path) as store:
        return store.actions(run_id)


def test_map_keeps_the_order_of_the_items_and_bounds_concurrency() -> None:
    handle = fl.run(mapped, 10, concurrency=3)
    assert handle.outputs == [x * x for x in range(10)]
    assert max(PEAK) == 3
    children = [a for a in actions(handle.id) if a.parent == "0"]
    assert [a.id for a in children] == [f"0.{i}" for i in range(10)]
    unbounded = fl.run(mapped, 10)
    assert unbounded.outputs == [x * x for x in range(10)]
    assert max(PEAK) == 10


def test_map_takes_several_iterables_and_sync_tasks() -> None:
    assert fl.run(mapped_pairs).outputs == [11, 22, 33]


def test_map_returns_or_raises_exceptions() -> None:
    assert fl.run(mapped_failures).outputs == ["0", "1", "2", "TaskFailedError", "4"]
    with pytest.raises(fl.errors.TaskFailedError, match="ValueError: three"):
        fl.run(mapped_failing)


def test_map_outside_a_run_calls_the_functions() -> None:
    assert asyncio.run(fl.map(square, [1, 2, 3], concurrency=2)) == [1, 4, 9]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"concurrency": -1}, "map.concurrency"), ({"return_exceptions": "yes"}, "map.return_exceptions")],
)
def test_map_checks_its_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(fl.SpecError) as info:
        asyncio.run(fl.map(square, [1], **kwargs))  # type: ignore[arg-type]
    assert info.value.field == field
    with pytest.raises(fl.SpecError):
        asyncio.run(fl.map(lambda x: x, [1]))  # type: ignore[arg-type]


@env.task
async def grouped() -> int:
    with fl.group("grid"):
        scores = await asyncio.gather(*(square(i) for i in range(4)))
    with fl.group("tail"):
        last = await square(7)
    return sum(scores) + last + await square(1)


def test_group_labels_the_actions_started_inside_it() -> None:
    handle = fl.run(grouped)
    by_id = {a.id: a.group_name for a in actions(handle.id)}
    assert by_id == {"0": None, "0.0": "grid", "0.1": "grid", "0.2": "grid", "0.3": "grid", "0.4": "tail", "0.5": None}


def test_runs_show_folds_a_group_into_one_node() -> None:
    handle = fl.run(grouped)
    result = CliRunner().invoke(runs, ["show", handle.id])
    assert result.exit_code == 0, result.output
    assert "group grid: 4 actions, 4 succeeded (--all lists them)" in result.output
    assert "group tail: 1 actions, 1 succeeded" in result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip().startswith("0.")]
    assert listed == ["0.5"]
    every = CliRunner().invoke(runs, ["show", handle.id, "--all"])
    assert "0.3" in every.output
    shown = json.loads(CliRunner().invoke(runs, ["show", handle.id, "-o", "json"]).output)
    assert {a["id"]: a["group_name"] for a in shown["actions"]}["0.2"] == "grid"


def test_a_group_name_is_checked() -> None:
    with pytest.raises(fl.SpecError) as info, fl.group("a/b"):
        pass
    assert info.value.field == "group.name"


@env.task
async def read_env() -> str:
    c = fl.ctx()
    return f"{c.env.get('MODE')} {c.env.get('LEVEL')}"


override_env = fl.TaskEnvironment(name="helpers-own", env_vars={"MODE": "task"})


@override_env.task
async def read_own_env() -> str:
    return fl.ctx().env["MODE"]


@env.task(cache=fl.Cache(version="1"))
async def stamp() -> float:
    return time.time()


def test_with_context_sets_run_scoped_defaults() -> None:
    runner = fl.Runner().with_context(name="nightly", labels={"team": "ml"}, env_vars={"MODE": "full"})
    handle = runner.run(read_env)
    assert handle.outputs == "full None"
    assert handle.id.startswith("nightly-")
    assert json.loads(handle.record.labels_json) == {"team": "ml"}
    again = runner.with_context(env_vars={"LEVEL": "2"}).run(read_env)  # merges with the first context
    assert again.outputs == "full 2"
    assert runner.run(read_own_env).outputs == "task"  # a task's own env vars win
    assert fl.run(read_env).outputs == "None None"  # nothing leaks into other runners
    with RecordStore(load_settings().db_path) as store:
        stored = store.run(handle.id)
    assert stored is not None
    assert json.loads(stored.labels_json) == {"team": "ml"}


def test_with_context_overwrite_cache_refreshes_cached_results() -> None:
    first = fl.run(stamp).outputs
    assert fl.run(stamp).outputs == first
    refreshed = fl.Runner().with_context(overwrite_cache=True).run(stamp).outputs
    assert refreshed > first
    assert fl.run(stamp).outputs == refreshed


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Not OK"}, "with_context.name"),
        ({"labels": {"team": 1}}, "with_context.labels['team']"),
        ({"env_vars": {"1X": "a"}}, "with_context.env_vars key"),
        ({"overwrite_cache": "yes"}, "with_context.overwrite_cache"),
    ],
)
def test_with_context_checks_its_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(fl.SpecError) as info:
        fl.Runner().with_context(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@env.task
async def where() -> str:
    with fl.group("inner"):
        return await whoami()


@env.task
async def whoami() -> str:
    c = fl.ctx()
    return f"{c.group} [{c.kubernetes_pod}] [{c.batch_job_id}]"


def test_ctx_has_the_group_and_empty_platform_identifiers_locally() -> None:
    assert fl.run(where).outputs == "inner [] []"


def test_runs_show_prints_the_labels() -> None:
    handle = fl.Runner().with_context(labels={"team": "ml", "sweep": "7"}).run(whoami)
    result = CliRunner().invoke(runs, ["show", handle.id])
    assert "labels    sweep=7, team=ml" in result.output
