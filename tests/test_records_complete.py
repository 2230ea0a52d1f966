"""Every action of a run reaches the records, however the run ends: the periodic flush never drops a batch."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import anyio
import pytest

import flytelike as fl
from flytelike._config import load_settings
from flytelike._storage import RecordStore

env = fl.TaskEnvironment(name="complete")


@env.task
async def leaf(i: int) -> int:
    if i % 1000 == 999:
        await asyncio.sleep(0.01)  # let the flusher run while the fan-out is under way
    return i


@env.task
async def wide(n: int) -> int:
    return sum(await asyncio.gather(*(leaf(i) for i in range(n))))


@env.task
async def wide_then_wait(n: int) -> int:
    total = sum(await asyncio.gather(*(leaf(i) for i in range(n))))
    await asyncio.sleep(60)
    return total


def _actions_recorded() -> tuple[str, int, set[str]]:
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
        actions = store.actions(run.id)
    return run.state.value, len(actions), {a.state.value for a in actions}


def test_a_wide_fan_out_records_every_action() -> None:
    assert fl.run(wide, 10_000).outputs == sum(range(10_000))
    assert _actions_recorded() == ("succeeded", 10_001, {"succeeded"})


async def test_a_cancelled_wide_fan_out_records_every_action() -> None:
    with anyio.move_on_after(1.5):
        await fl.run_async(wide_then_wait, 10_000)
    state, count, states = _actions_recorded()
    assert (state, count) == ("aborted", 10_001)
    assert states == {"succeeded", "aborted"}


def test_a_run_is_recorded_as_queued_before_its_root_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = RecordStore.write

    def spy(self: RecordStore, run: object, actions: object, events: object = ()) -> None:
        seen.append(run.state.value)  # type: ignore[attr-defined]
        original(self, run, actions, events)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordStore, "write", spy)
    fl.run(wide, 3)
    assert seen[0] == "queued"
    assert seen[-1] == "succeeded"


def test_several_first_opens_of_a_new_records_file_at_once_all_succeed(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    path = tmp_path / "new.sqlite3"

    def open_it() -> None:
        try:
            RecordStore(path).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
