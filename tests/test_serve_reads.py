"""Watches woken by one commit share one read of the run's events."""

from __future__ import annotations

from typing import Any

import anyio

from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._reads import EventReads


class _Records:
    """Stands in for the records' events_after: counts the queries, and each takes a while (a gate)."""

    def __init__(self) -> None:
        self.queries = 0
        self.gate = anyio.Event()

    async def events_after(self, run_id: str, after_seq: int, limit: int = 1000) -> list[runs_pb2.Event]:
        self.queries += 1
        await self.gate.wait()
        return [runs_pb2.Event(run_id=run_id, seq=after_seq + 1, action_id="0", state="running")]


async def test_watches_asking_for_the_same_events_at_once_share_one_query() -> None:
    records = _Records()
    reads = EventReads(records)  # type: ignore[arg-type]
    got: list[Any] = []

    async def watch(cursor: int) -> None:
        got.append((cursor, [e.seq for e in await reads.after("r", cursor)]))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(watch, 7)
        tg.start_soon(watch, 3)  # another cursor: a query of its own
        await anyio.wait_all_tasks_blocked()
        records.gate.set()
    assert records.queries == 2
    assert sorted(got) == [(3, [4])] + [(7, [8])] * 50
    # Nothing is kept once answered: the next commit's read is a new query.
    await reads.after("r", 7)
    assert records.queries == 3


async def test_a_reader_that_goes_away_leaves_the_others_to_read_for_themselves() -> None:
    records = _Records()
    reads = EventReads(records)  # type: ignore[arg-type]
    got: list[int] = []

    async def follower() -> None:
        got.extend(e.seq for e in await reads.after("r", 1))

    leading = anyio.CancelScope()

    async def leader() -> None:
        with leading:
            await reads.after("r", 1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await anyio.wait_all_tasks_blocked()  # the leader's query is in flight
        tg.start_soon(follower)
        await anyio.wait_all_tasks_blocked()  # the follower waits for the leader's answer
        leading.cancel()
        await anyio.wait_all_tasks_blocked()  # the follower queries for itself
        records.gate.set()
    assert got == [2]
    assert records.queries == 2
