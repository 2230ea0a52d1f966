"""The control plane's records on SQLAlchemy's async engine: SQLite (aiosqlite, WAL) or PostgreSQL (asyncpg).

One code path, two drivers. Writes that must not interleave (an event batch and the action rows it updates, a run
and its labels) are one transaction each. SQLite takes one writer at a time: writes are serialized here with a
lock rather than left to fail with ``database is locked`` under load; PostgreSQL takes them concurrently.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._state import _schema as s
from flytelike._remote._state._rows import (
    DEFAULT_PAGE,
    MAX_PAGE,
    TERMINAL_RUN_STATES,
    Abort,
    NewRun,
    RunFilter,
    apply_event,
    event_values,
    migrate,
    page_token,
    parse_page_token,
    run_message,
    safe_url,
    sqlite_pragmas,
)
from flytelike.errors import RecordWriteError, SpecError

__all__ = ["ServerState"]

_RUN_COLUMNS = [c for c in s.runs.c if c.name not in ("request", "outputs", "outputs_json", "token_sha256")]


class ServerState:
    """The server's records, open while entered (``async with``); migrations are applied on entering.

    Args:
        url: a SQLAlchemy async URL (see :func:`database_url`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._sqlite = url.startswith("sqlite")
        self._write_lock = anyio.Lock()

    @property
    def dialect(self) -> str:
        return "sqlite" if self._sqlite else "postgresql"

    async def __aenter__(self) -> ServerState:
        if self._sqlite:
            path = Path(self.url.split(":///", 1)[1])
            await anyio.to_thread.run_sync(lambda: path.parent.mkdir(parents=True, exist_ok=True))
        engine = create_async_engine(self.url)
        if self._sqlite:
            sa.event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate)
        except SQLAlchemyError as e:
            await engine.dispose()
            raise RecordWriteError(
                f"the server database {safe_url(self.url)} could not be opened: {e}",
                path=safe_url(self.url),
                cause=str(e),
            ) from None
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            with anyio.CancelScope(shield=True):
                await engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            raise RuntimeError("ServerState used outside `async with`")
        lock: AbstractAsyncContextManager[Any] = self._write_lock if self._sqlite else nullcontext()
        async with lock, self._engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            raise RuntimeError("ServerState used outside `async with`")
        async with self._engine.connect() as connection:
            yield connection

    def _insert(self, table: sa.Table) -> Any:
        return (sqlite.insert if self._sqlite else postgresql.insert)(table)

    # --- runs -------------------------------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[runs_pb2.Run, bool]:
        """Record ``run``, or return the run recorded before with its request id; True when it is new."""
        request = run.request
        values = {
            "id": run.id,
            "request_id": request.request_id,
            "task": run.task,
            "state": "queued",
            "created": run.created,
            "labels_json": json.dumps(dict(request.labels), sort_keys=True),
            "platform": request.platform,
            "bundle_digest": request.bundle_digest,
            "inputs_json": request.inputs_json or "{}",
            "request": request.SerializeToString(deterministic=True),
            "token_sha256": run.token_sha256,
            "last_seq": 0,
            "actions": 0,
        }
        try:
            async with self._write() as c:
                await c.execute(s.runs.insert().values(values))
                if request.labels:
                    await c.execute(
                        s.labels.insert(), [{"run_id": run.id, "key": k, "value": v} for k, v in request.labels.items()]
                    )
        except IntegrityError:
            existing = await self.run_by_request(request.request_id)
            if existing is None:  # the conflict was on another unique column: a bug, not a retry
                raise
            return existing, False
        found = await self.get_run(run.id)
        assert found is not None
        return found, True

    async def run_by_request(self, request_id: str) -> runs_pb2.Run | None:
        async with self._read() as c:
            row = (await c.execute(sa.select(*_RUN_COLUMNS).where(s.runs.c.request_id == request_id))).first()
        return None if row is None else run_message(row)

    async def get_run(self, run_id: str) -> runs_pb2.Run | None:
        async with self._read() as c:
            row = (await c.execute(sa.select(*_RUN_COLUMNS).where(s.runs.c.id == run_id))).first()
        return None if row is None else run_message(row)

    async def run_request(self, run_id: str) -> runs_pb2.CreateRunRequest | None:
        """The CreateRunRequest the run was created from."""
        async with self._read() as c:
            data = (await c.execute(sa.select(s.runs.c.request).where(s.runs.c.id == run_id))).scalar()
        return None if data is None else runs_pb2.CreateRunRequest.FromString(data)

    async def run_for_token(self, token_sha256: str) -> str | None:
        """The run whose token has this sha256, if any."""
        async with self._read() as c:
            return (await c.execute(sa.select(s.runs.c.id).where(s.runs.c.token_sha256 == token_sha256))).scalar()

    async def token_of(self, run_id: str) -> str | None:
        async with self._read() as c:
            return (await c.execute(sa.select(s.runs.c.token_sha256).where(s.runs.c.id == run_id))).scalar()

    async def list_runs(self, query: RunFilter) -> tuple[list[runs_pb2.Run], str]:
        """A page of runs, newest first, and the token of the next page (empty on the last)."""
        size = query.page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            raise SpecError("page_size", size, f"must be 1 to {MAX_PAGE}", accepted="e.g. 50 (0 for 50)")
        r = s.runs.c
        stmt = sa.select(*_RUN_COLUMNS)
        if query.states:
            stmt = stmt.where(r.state.in_(query.states))
        if query.task:
            stmt = stmt.where(r.task == query.task)
        if query.since:
            stmt = stmt.where(r.created >= query.since)
        for key, value in (query.labels or {}).items():
            label = s.labels.c
            stmt = stmt.where(sa.exists().where(label.run_id == r.id, label.key == key, label.value == value))
        if query.page_token:
            created, run_id = parse_page_token(query.page_token)
            stmt = stmt.where(sa.or_(r.created < created, sa.and_(r.created == created, r.id < run_id)))
        stmt = stmt.order_by(r.created.desc(), r.id.desc()).limit(size + 1)
        async with self._read() as c:
            rows = (await c.execute(stmt)).all()
        found = [run_message(row) for row in rows[:size]]
        more = len(rows) > size
        return found, page_token(found[-1].created, found[-1].id) if more else ""

    async def unfinished_runs(self) -> list[str]:
        async with self._read() as c:
            rows = await c.execute(sa.select(s.runs.c.id).where(s.runs.c.state.not_in(TERMINAL_RUN_STATES)))
            return [row.id for row in rows]

    async def set_run_state(
        self,
        run_id: str,
        state: str,
        *,
        error: str = "",
        outputs: bytes | None = None,
        outputs_json: str | None = None,
        at: float | None = None,
    ) -> runs_pb2.Event | None:
        """Move the run to ``state`` and append its run event, in one transaction; None (nothing written) when it
        is in that state already or has ended."""
        now = time.time() if at is None else at
        r = s.runs.c
        async with self._write() as c:
            row = (await c.execute(sa.select(r.state, r.last_seq, r.task).where(r.id == run_id))).first()
            if row is None or row.state == state or row.state in TERMINAL_RUN_STATES:
                return None
            seq = row.last_seq + 1
            values: dict[str, Any] = {"state": state, "last_seq": seq}
            if state in TERMINAL_RUN_STATES:
                values.update(ended=now, error=error or None, outputs=outputs, outputs_json=outputs_json)
            await c.execute(s.runs.update().where(r.id == run_id).values(values))
            event = runs_pb2.Event(run_id=run_id, seq=seq, task=row.task, state=state, time=now, reason=error)
            await c.execute(s.events.insert().values({**event_values(event), "position": seq}))
        return event

    async def outputs(self, run_id: str) -> tuple[str, bytes | None, str | None, str] | None:
        """The run's state, outputs, their JSON and its error; None for an unknown run."""
        r = s.runs.c
        async with self._read() as c:
            row = (
                await c.execute(sa.select(r.state, r.outputs, r.outputs_json, r.error).where(r.id == run_id))
            ).first()
        return None if row is None else (row.state, row.outputs, row.outputs_json, row.error or "")

    # --- events and actions -----------------------------------------------------------------------------------

    async def append_events(self, run_id: str, batch: Sequence[runs_pb2.Event]) -> list[runs_pb2.Event]:
        """Store the action events of a batch (in the source's seq order); returns those that were new (a repeat,
        same run, action, attempt and seq, is a no-op).

        Each new event gets the run's next position (the seq watchers see); each action's row follows its latest
        event, and the run's ``last_seq`` is its last position. A few statements per batch, whatever its size: the
        duplicates are found with one query, the events inserted with one, the actions read, inserted and updated
        with one each.
        """
        if not batch:
            return []
        r, a, e = s.runs.c, s.actions.c, s.events.c
        async with self._write() as c:
            run = (await c.execute(sa.select(r.last_seq).where(r.id == run_id))).first()
            if run is None:
                raise RecordWriteError(
                    f"events for run {run_id!r}, which the server has no record of",
                    path=safe_url(self.url),
                    cause="no such run",
                )
            seqs = {event.seq for event in batch}
            stored = {
                (row.action_id, row.attempt, row.seq)
                for row in await c.execute(
                    sa.select(e.action_id, e.attempt, e.seq).where(e.run_id == run_id, e.seq.in_(seqs))
                )
            }
            fresh: list[runs_pb2.Event] = []
            for event in batch:
                key = (event.action_id, event.attempt, event.seq)
                if key not in stored:
                    stored.add(key)
                    fresh.append(event)
            if not fresh:
                return []
            position = run.last_seq
            rows = []
            for event in fresh:
                position += 1
                rows.append({**event_values(event), "position": position})
            await c.execute(s.events.insert(), rows)
            touched = {event.action_id for event in fresh}
            current: dict[str, dict[str, Any]] = {
                row.action_id: dict(row._mapping)
                for row in await c.execute(sa.select(s.actions).where(a.run_id == run_id, a.action_id.in_(touched)))
            }
            known = set(current)
            for event in fresh:
                apply_event(current, run_id, event)
            inserts = [row for action_id, row in current.items() if action_id not in known]
            updates = [
                {**row, "b_run": run_id, "b_action": action_id}
                for action_id, row in current.items()
                if action_id in known
            ]
            if inserts:
                await c.execute(s.actions.insert(), inserts)
            if updates:
                columns = ("state", "attempts", "started", "ended", "error", "failure_kind")
                await c.execute(
                    s.actions.update()
                    .where(a.run_id == sa.bindparam("b_run"), a.action_id == sa.bindparam("b_action"))
                    .values({name: sa.bindparam(name) for name in columns}),
                    [{k: row[k] for k in (*columns, "b_run", "b_action")} for row in updates],
                )
            await c.execute(
                s.runs.update().where(r.id == run_id).values(last_seq=position, actions=r.actions + len(inserts))
            )
        return fresh

    async def events_after(self, run_id: str, after_seq: int, limit: int = 1000) -> list[runs_pb2.Event]:
        e = s.events.c
        stmt = sa.select(s.events).where(e.run_id == run_id, e.position > after_seq).order_by(e.position).limit(limit)
        async with self._read() as c:
            rows = await c.execute(stmt)
            return [
                runs_pb2.Event(
                    run_id=row.run_id,
                    seq=row.position,
                    action_id=row.action_id,
                    parent=row.parent,
                    task=row.task,
                    state=row.state,
                    attempt=row.attempt,
                    time=row.time,
                    kind=row.kind,
                    reason=row.reason,
                )
                for row in rows
            ]

    async def action_events(self, run_id: str) -> list[runs_pb2.Event]:
        """Every action event of the run in the order recorded, each with its source's own ``seq`` (not the
        position watchers see): what a restarted server resumes the run from."""
        e = s.events.c
        stmt = sa.select(s.events).where(e.run_id == run_id, e.action_id != "").order_by(e.position)
        async with self._read() as c:
            rows = await c.execute(stmt)
            return [
                runs_pb2.Event(
                    run_id=row.run_id,
                    seq=row.seq,
                    action_id=row.action_id,
                    parent=row.parent,
                    task=row.task,
                    state=row.state,
                    attempt=row.attempt,
                    time=row.time,
                    kind=row.kind,
                    reason=row.reason,
                )
                for row in rows
            ]

    async def list_actions(self, run_id: str) -> list[runs_pb2.Action]:
        a = s.actions.c
        async with self._read() as c:
            rows = await c.execute(sa.select(s.actions).where(a.run_id == run_id).order_by(a.first_seq))
            return [
                runs_pb2.Action(
                    id=row.action_id,
                    parent=row.parent,
                    task=row.task,
                    state=row.state,
                    attempts=row.attempts,
                    started=row.started or 0.0,
                    ended=row.ended or 0.0,
                    error=row.error or "",
                    failure_kind=row.failure_kind or "",
                )
                for row in rows
            ]

    async def action(self, run_id: str, action_id: str) -> runs_pb2.Action | None:
        for found in await self.list_actions(run_id):
            if found.id == action_id:
                return found
        return None

    # --- aborts -----------------------------------------------------------------------------------------------

    async def record_abort(self, run_id: str, action_id: str, reason: str) -> int:
        async with self._write() as c:
            result = await c.execute(
                s.aborts.insert().values(run_id=run_id, action_id=action_id, reason=reason, requested=time.time())
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    async def pending_aborts(self) -> list[Abort]:
        b = s.aborts.c
        async with self._read() as c:
            rows = await c.execute(sa.select(s.aborts).where(b.done.is_(None)).order_by(b.id))
            return [Abort(row.id, row.run_id, row.action_id, row.reason) for row in rows]

    async def abort_done(self, abort_id: int, outcome: str) -> None:
        async with self._write() as c:
            await c.execute(
                s.aborts.update().where(s.aborts.c.id == abort_id).values(done=time.time(), outcome=outcome)
            )

    # --- logs -------------------------------------------------------------------------------------------------

    async def append_logs(self, run_id: str, action_id: str, attempt: int, offset: int, data: bytes) -> None:
        """Store a chunk of an attempt's output starting at ``offset`` (a chunk stored already is a no-op)."""
        values = {"run_id": run_id, "action_id": action_id, "attempt": attempt, "offset": offset, "data": data}
        async with self._write() as c:
            await c.execute(self._insert(s.logs).values(values).on_conflict_do_nothing())

    async def logs_after(self, run_id: str, action_id: str, attempt: int, after: int) -> list[tuple[int, bytes]]:
        """The attempt's output from byte ``after`` on, as (offset, data) chunks."""
        g = s.logs.c
        stmt = (
            sa.select(g.offset, g.data)
            .where(
                g.run_id == run_id,
                g.action_id == action_id,
                g.attempt == attempt,
                g.offset + sa.func.length(g.data) > after,
            )
            .order_by(g.offset)
        )
        async with self._read() as c:
            rows = (await c.execute(stmt)).all()
        out = []
        for offset, data in rows:
            skip = max(0, after - offset)
            out.append((offset + skip, bytes(data[skip:])))
        return out

    async def log_end(self, run_id: str, action_id: str, attempt: int) -> int:
        """How many bytes of the attempt's output are stored."""
        g = s.logs.c
        stmt = sa.select(sa.func.max(g.offset + sa.func.length(g.data))).where(
            g.run_id == run_id, g.action_id == action_id, g.attempt == attempt
        )
        async with self._read() as c:
            return int((await c.execute(stmt)).scalar() or 0)
