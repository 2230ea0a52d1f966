"""The control plane's records, on SQLite and (when one is reachable) PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from serve_support import DATABASES, fresh_database

from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._state import NewRun, ServerState, database_url
from flytelike.errors import RecordWriteError, SpecError


@pytest.fixture(params=DATABASES)
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServerState]:
    async with (
        fresh_database(request.param, tmp_path) as url,
        ServerState(database_url(url, home=tmp_path)) as opened,
    ):
        yield opened


def _event(seq: int, action: str, state: str, attempt: int = 1) -> runs_pb2.Event:
    return runs_pb2.Event(
        run_id="r-1", seq=seq, action_id=action, task="t", state=state, attempt=attempt, time=1000.0 + seq
    )


async def _run(state: ServerState) -> None:
    request = runs_pb2.CreateRunRequest(request_id="q", bundle_digest="sha256:" + "0" * 64)
    await state.create_run(NewRun("r-1", request, "t", "h", time.time()))


async def test_a_repeated_report_is_stored_once(state: ServerState) -> None:
    await _run(state)
    batch = [_event(1, "0", "queued"), _event(2, "0", "running"), _event(3, "0.0", "queued")]
    assert len(await state.append_events("r-1", batch)) == 3
    assert await state.append_events("r-1", batch) == []
    # A batch mixing a repeat and something new stores the new only, at the next position.
    fresh = await state.append_events("r-1", [batch[2], _event(4, "0.0", "failed", attempt=1)])
    assert [e.seq for e in fresh] == [4]
    stored = await state.events_after("r-1", 0)
    assert [(e.seq, e.action_id, e.state) for e in stored] == [
        (1, "0", "queued"),
        (2, "0", "running"),
        (3, "0.0", "queued"),
        (4, "0.0", "failed"),
    ]
    actions = {a.id: a for a in await state.list_actions("r-1")}
    assert actions["0"].state == "running"
    assert actions["0"].started == 1002.0
    assert actions["0.0"].state == "failed"
    assert actions["0.0"].ended == 1004.0
    run = await state.get_run("r-1")
    assert run is not None
    assert (run.last_seq, run.actions) == (4, 2)


async def test_the_run_event_follows_the_action_events_and_a_run_ends_once(state: ServerState) -> None:
    await _run(state)
    await state.append_events("r-1", [_event(1, "0", "succeeded")])
    ended = await state.set_run_state("r-1", "succeeded", outputs=b"out")
    assert ended is not None
    assert ended.seq == 2
    assert await state.set_run_state("r-1", "failed") is None
    assert await state.outputs("r-1") == ("succeeded", b"out", None, "")


async def test_migrations_apply_once_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = database_url(str(tmp_path / "s.sqlite3"), home=tmp_path)
    async with ServerState(url):
        pass
    async with ServerState(url):  # a second start applies nothing again
        pass
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as c:
        assert [r[0] for r in c.execute(sa.text("select version from schema_version"))] == [1]
        c.execute(sa.text("insert into schema_version (version, applied) values (99, 0)"))
    engine.dispose()
    with pytest.raises(RecordWriteError, match="schema version 99, newer than this flytelike knows"):
        async with ServerState(url):
            pass


def test_database_urls() -> None:
    home = Path("/srv/fl")
    assert database_url("", home=home) == "sqlite+aiosqlite:////srv/fl/server.sqlite3"
    assert database_url("postgresql://u:p@db/x", home=home) == "postgresql+asyncpg://u:p@db/x"
    with pytest.raises(SpecError, match=r"serve\.database.*mysql"):
        database_url("mysql://db/x", home=home)
