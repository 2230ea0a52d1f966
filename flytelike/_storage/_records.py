"""Run records: runs, their actions and the actions' transition events in SQLite, written by the executor and read
by the CLI and run handles.

The executor writes from a worker thread every half second (the run, the actions changed since the last write,
and the events since then); ``flytelike runs``/``logs`` and run handles read the same file, often from another
process while the run is still going. The file is in WAL mode so those readers never block the writer, nor the
writer them.

A run whose process died without recording its end (killed, machine lost) would otherwise stay ``running``
forever. Readers therefore report a queued or running run as ``lost`` when the process recorded for it is gone
(its pid on this host, or its heartbeat anywhere: see :mod:`flytelike._storage._liveness`). This is decided on
every read and never written back: reading stays read-only (it works on a read-only home and never takes the
write lock from a live run), and a run judged lost by a stale heartbeat shows as running again once its process
is heard from.

Example:
    >>> import tempfile, pathlib
    >>> from flytelike._executor._model import ActionRecord, RunRecord
    >>> with tempfile.TemporaryDirectory() as d, RecordStore(pathlib.Path(d) / "runs.sqlite3") as store:
    ...     store.write(RunRecord("r1", "main"), [ActionRecord("r1", "0", None, "main", "v1", logs=["hi\\n"])])
    ...     print(store.run("r").id, store.logs("r1", "0"), end="")  # a unique prefix finds the run
    r1 hi
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, Recovered, RunRecord, RunState
from flytelike._storage._liveness import this_host
from flytelike._storage._record_schema import (
    ACTION_COLUMNS,
    EVENT_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    action_from_row,
    action_row,
    event_row,
    run_from_row,
    run_row,
)
from flytelike._storage._record_tables import _MIGRATIONS
from flytelike._storage._run_query import SELECT_RUN, find_runs, last_seen, read_state
from flytelike._storage._sqlite import SQLiteFile

__all__ = [
    "ACTION_COLUMNS",
    "EVENT_COLUMNS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "RecordStore",
    "natural_key",
]


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_UPSERT_RUN = _upsert_sql("runs", RUN_COLUMNS, ("id",))
_UPSERT_ACTION = _upsert_sql("actions", ACTION_COLUMNS, ("run_id", "id"))
# An event is never changed once stored, so a second report of the same (run, seq) is a no-op.
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)
_SELECT_ACTION = f"SELECT {', '.join(ACTION_COLUMNS)} FROM actions"
_SELECT_EVENT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"


def as_lost(action: ActionRecord, seen: float) -> ActionRecord:
    """An action of a lost run as readers see it: if it had not finished, aborted when the run was last seen."""
    if action.state.done:
        return action
    ended = action.ended if action.ended is not None else max(seen, action.started or action.created)
    return dataclasses.replace(action, state=ActionState.ABORTED, ended=ended)


def natural_key(action_id: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for dotted action ids, numeric per component: ``0.2`` before ``0.10``, a parent before its children.

    Non-numeric components (not produced by the executor, but tolerated) sort after numeric ones, by text.
    """
    return tuple((0, int(p), "") if p.isdecimal() else (1, 0, p) for p in action_id.split("."))


class RecordStore(SQLiteFile):
    """Runs, actions and events in one SQLite file; implements the executor's ``Recorder`` and the queries the CLI
    uses.

    Safe to share between threads (one connection behind a lock); open one store per process. Several processes
    may read and write the same file at once. Reads report a run whose process is gone as ``RunState.LOST`` (see
    the module's docstring); nothing read is ever written back.

    Args:
        path: the database file, usually ``Settings.db_path`` (``$FLYTELIKE_HOME/runs.sqlite3``); it and its
            directory are created if missing.

    Raises:
        RecordWriteError: the file cannot be created, opened or migrated (from the constructor), or a write fails;
            the message names the file and the cause.

    Example:
        >>> from flytelike._config import load_settings
        >>> with RecordStore(load_settings().db_path) as store:  # doctest: +SKIP
        ...     for run in store.runs(limit=5):
        ...         print(run.id, run.state)
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, _MIGRATIONS, what="run records")
        self._host = this_host()

    # --- writing (the executor's Recorder) ---------------------------------------------------------------------

    def write(self, run: RunRecord, actions: Sequence[ActionRecord], events: Iterable[Event] = ()) -> None:
        """Insert or update ``run`` and ``actions`` (snapshots; the latest write of an action wins) and add
        ``events`` (an event already stored, same run and ``seq``, is left as it is), in one transaction.

        Raises:
            RecordWriteError: the write failed (disk full, read-only file, locked for longer than the timeout);
                nothing of it was stored.
        """
        one_row = run_row(run)
        # Rows are made as SQLite takes them, not all at once: a flush of a 100,000-way fan-out would otherwise hold
        # a second copy of every record in memory.
        action_rows = map(action_row, actions)
        event_rows = list(map(event_row, events))
        with self._transaction() as conn:
            conn.execute(_UPSERT_RUN, one_row)
            # One executemany in one transaction: a commit per row would cost a WAL append each.
            conn.executemany(_UPSERT_ACTION, action_rows)
            if event_rows:
                conn.executemany(_INSERT_EVENT, event_rows)

    # --- queries -----------------------------------------------------------------------------------------------

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one reading statement (the queries of :mod:`flytelike._storage._run_query` take it)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _read_run(self, row: Sequence[Any]) -> RunRecord:
        return self._as_read(row, read_state(row, host=self._host, now=time.time()))

    @staticmethod
    def _as_read(row: Sequence[Any], state: str) -> RunRecord:
        run = run_from_row(row)
        run.state = RunState(state)
        return run

    def runs(
        self,
        limit: int = 20,
        *,
        task: str | None = None,
        since: float | None = None,
        labels: Mapping[str, str] | None = None,
        states: Iterable[RunState] | None = None,
    ) -> list[RunRecord]:
        """The ``limit`` most recent runs, newest first, of those that pass every filter given.

        Args:
            limit: at most this many runs.
            task: the root task's full name (``env.task``), or its name alone (``task``).
            since: created at or after this time (epoch seconds).
            labels: every one of these labels, with these values.
            states: in one of these states, as a reader sees them (``LOST`` for a run whose process is gone).
        """
        found = find_runs(
            self.fetch,
            limit=limit,
            task=task,
            since=since,
            labels=labels,
            states=states,
            host=self._host,
            now=time.time(),
        )
        return [self._as_read(row, state) for row, state in found]

    def recovery(self, run_id: str) -> dict[str, Recovered]:
        """The actions of run ``run_id`` (exact id) that succeeded with recorded outputs, by action id: what a
        rerun with ``--recover`` may reuse."""
        rows = self.fetch(
            "SELECT id, inputs_digest, outputs FROM actions WHERE run_id = ? AND state IN (?, ?, ?) "
            "AND outputs IS NOT NULL AND inputs_digest IS NOT NULL",
            (run_id, ActionState.SUCCEEDED.value, ActionState.CACHED.value, ActionState.RECOVERED.value),
        )
        return {aid: Recovered(run_id, digest, bytes(data)) for aid, digest, data in rows}

    def run_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of up to ``limit`` runs whose id starts with ``prefix`` (to explain an ambiguous prefix)."""
        # substr() rather than LIKE, so that '%' and '_' in what a user typed are not wildcards.
        rows = self.fetch(
            "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY created DESC LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return [r[0] for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or else the only run whose id starts with it; None if none or several match."""
        rows = self.fetch(f"{SELECT_RUN} WHERE id = ?", (run_id,))
        if not rows and run_id:
            rows = self.fetch(f"{SELECT_RUN} WHERE substr(id, 1, ?) = ? LIMIT 2", (len(run_id), run_id))
        return self._read_run(rows[0]) if len(rows) == 1 else None

    def last_seen(self, run: RunRecord) -> float:
        """The last time (epoch seconds) the run's process was known to be alive: when it ended, for a finished
        run; else its heartbeat, or without one the latest time recorded for it (its actions' and events' times,
        or when it was created)."""
        return last_seen(
            self.fetch, run.id, state=run.state, created=run.created, ended=run.ended, heartbeat=run.heartbeat
        )

    def _lost_run(self, run_id: str) -> RunRecord | None:
        rows = self.fetch(f"{SELECT_RUN} WHERE id = ?", (run_id,))
        run = self._read_run(rows[0]) if rows else None
        return run if run is not None and run.state is RunState.LOST else None

    def actions(self, run_id: str) -> list[ActionRecord]:
        """Every action of the run (exact id), in natural id order: ``0``, ``0.0``, ``0.1``, ``0.2``, ``0.10``.

        Of a lost run, the actions that had not finished come back aborted, ended when the run was last seen.
        """
        rows = self.fetch(f"{_SELECT_ACTION} WHERE run_id = ?", (run_id,))
        rows.sort(key=lambda r: natural_key(r[1]))
        actions = [action_from_row(r) for r in rows]
        lost = self._lost_run(run_id) if any(not a.state.done for a in actions) else None
        if lost is not None:
            seen = self.last_seen(lost)
            actions = [as_lost(a, seen) for a in actions]
        return actions

    def action(self, run_id: str, action_id: str) -> ActionRecord | None:
        """One action of a run (exact ids), or None; of a lost run, as :meth:`actions` reports it."""
        rows = self.fetch(f"{_SELECT_ACTION} WHERE run_id = ? AND id = ?", (run_id, action_id))
        if not rows:
            return None
        action = action_from_row(rows[0])
        lost = None if action.state.done else self._lost_run(run_id)
        return action if lost is None else as_lost(action, self.last_seen(lost))

    def events(self, run_id: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """The run's events with ``seq`` greater than ``after_seq``, in order; at most ``limit`` of them."""
        rows = self.fetch(
            f"{_SELECT_EVENT} WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        )
        return [Event(*r) for r in rows]

    def logs(self, run_id: str, action_id: str | None = None) -> str:
        """The tail of the output of one action kept in the records (all of it, unless it printed more than the tail
        keeps: then the whole output is in its log files, see ``ActionRecord.log_path``); or, with no
        ``action_id``, of every action that printed anything, each under a header line ``== ACTION TASK ==``, in
        natural id order. Empty if nothing was captured."""
        if action_id is not None:
            rows = self.fetch("SELECT logs FROM actions WHERE run_id = ? AND id = ?", (run_id, action_id))
            return str(rows[0][0]) if rows else ""
        rows = self.fetch("SELECT id, task, logs FROM actions WHERE run_id = ? AND logs != ''", (run_id,))
        rows.sort(key=lambda r: natural_key(r[0]))
        parts: list[str] = []
        for aid, task, text in rows:
            parts.append(f"== {aid} {task} ==\n")
            parts.append(text if text.endswith("\n") else text + "\n")
        return "".join(parts)
