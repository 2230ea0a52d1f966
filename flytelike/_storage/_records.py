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

import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage._liveness import as_lost, is_lost
from flytelike._storage._sqlite import SQLiteFile

__all__ = [
    "ACTION_COLUMNS",
    "EVENT_COLUMNS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "RecordStore",
    "natural_key",
]

# In dataclass field order, which a test pins: a field added to the model without a column here would otherwise
# be dropped on write without a word.
RUN_COLUMNS = (
    "id",
    "task",
    "state",
    "created",
    "ended",
    "error",
    "platform",
    "inputs_json",
    "outputs_json",
    "actions",
    "pid",
    "host",
    "heartbeat",
    "labels_json",
)
ACTION_COLUMNS = (
    "run_id",
    "id",
    "parent",
    "task",
    "task_version",
    "state",
    "attempts",
    "created",
    "started",
    "ended",
    "cpu_millis",
    "memory",
    "gpus",
    "peak_memory",
    "cpu_time",
    "error",
    "error_type",
    "platform",
    "cache_key",
    "logs",
    "failure_kind",
    "group_name",
    "log_path",
)
# In Event field order.
EVENT_COLUMNS = ("run_id", "seq", "action", "state", "attempt", "time", "kind", "reason")

# _MIGRATIONS[i] takes a database from schema version i to i + 1 (PRAGMA user_version). Append, never edit: a
# file written by an older flytelike is brought forward statement by statement on open.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY NOT NULL,
            task TEXT NOT NULL,
            state TEXT NOT NULL,
            created REAL NOT NULL,
            ended REAL,
            error TEXT,
            platform TEXT NOT NULL,
            inputs_json TEXT NOT NULL,
            outputs_json TEXT,
            actions INTEGER NOT NULL
        )""",
        "CREATE INDEX runs_by_created ON runs (created)",
        # A rowid table, not WITHOUT ROWID: logs can make rows large, which WITHOUT ROWID handles poorly.
        """CREATE TABLE actions (
            run_id TEXT NOT NULL,
            id TEXT NOT NULL,
            parent TEXT,
            task TEXT NOT NULL,
            task_version TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created REAL NOT NULL,
            started REAL,
            ended REAL,
            cpu_millis INTEGER NOT NULL,
            memory INTEGER NOT NULL,
            gpus INTEGER NOT NULL,
            peak_memory INTEGER,
            cpu_time REAL,
            error TEXT,
            error_type TEXT,
            platform TEXT NOT NULL,
            cache_key TEXT,
            logs TEXT NOT NULL,
            PRIMARY KEY (run_id, id)
        )""",
    ),
    (
        # Who runs the run (to tell a live run from a lost one), and why an action failed.
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN heartbeat REAL",
        "ALTER TABLE actions ADD COLUMN failure_kind TEXT",
        # Small rows under a composite key: WITHOUT ROWID stores them once, in key order.
        """CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            action TEXT NOT NULL,
            state TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
    ),
    (
        # fl.group labels of actions, and a run's labels.
        "ALTER TABLE actions ADD COLUMN group_name TEXT",
        "ALTER TABLE runs ADD COLUMN labels_json TEXT NOT NULL DEFAULT '{}'",
    ),
    (
        # Output moved to log files (flytelike._storage._spool); `logs` keeps only a tail of it.
        "ALTER TABLE actions ADD COLUMN log_path TEXT",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


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
_SELECT_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
_SELECT_ACTION = f"SELECT {', '.join(ACTION_COLUMNS)} FROM actions"
_SELECT_EVENT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
_FINISHED_RUN = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.ABORTED})


def natural_key(action_id: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for dotted action ids, numeric per component: ``0.2`` before ``0.10``, a parent before its children.

    Non-numeric components (not produced by the executor, but tolerated) sort after numeric ones, by text.
    """
    return tuple((0, int(p), "") if p.isdecimal() else (1, 0, p) for p in action_id.split("."))


def _run_row(r: RunRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.task,
        r.state.value,
        r.created,
        r.ended,
        r.error,
        r.platform,
        r.inputs_json,
        r.outputs_json,
        r.actions,
        r.pid,
        r.host,
        r.heartbeat,
        r.labels_json,
    )


def _action_row(a: ActionRecord) -> tuple[Any, ...]:
    # Explicit attribute access rather than getattr over ACTION_COLUMNS: this runs for every action of every
    # flush, and 10,000 actions must be written in well under 100 ms.
    return (
        a.run_id,
        a.id,
        a.parent,
        a.task,
        a.task_version,
        a.state.value,
        a.attempts,
        a.created,
        a.started,
        a.ended,
        a.cpu_millis,
        a.memory,
        a.gpus,
        a.peak_memory,
        a.cpu_time,
        a.error,
        a.error_type,
        a.platform,
        a.cache_key,
        "".join(a.logs) if a.logs else "",
        a.failure_kind,
        a.group_name,
        a.log_path,
    )


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        task=row[1],
        state=RunState(row[2]),
        created=row[3],
        ended=row[4],
        error=row[5],
        platform=row[6],
        inputs_json=row[7],
        outputs_json=row[8],
        actions=row[9],
        pid=row[10],
        host=row[11],
        heartbeat=row[12],
        labels_json=row[13],
    )


def _action_from_row(row: Sequence[Any]) -> ActionRecord:
    return ActionRecord(
        run_id=row[0],
        id=row[1],
        parent=row[2],
        task=row[3],
        task_version=row[4],
        state=ActionState(row[5]),
        attempts=row[6],
        created=row[7],
        started=row[8],
        ended=row[9],
        cpu_millis=row[10],
        memory=row[11],
        gpus=row[12],
        peak_memory=row[13],
        cpu_time=row[14],
        error=row[15],
        error_type=row[16],
        platform=row[17],
        cache_key=row[18],
        # The tail was joined on write; it comes back as one chunk (or none), which is all readers need.
        logs=[row[19]] if row[19] else None,
        failure_kind=row[20],
        group_name=row[21],
        log_path=row[22],
    )


def _event_row(e: Event) -> tuple[Any, ...]:
    return (e.run_id, e.seq, e.action, e.state, e.attempt, e.time, e.kind, e.reason)


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
        self._host = socket.gethostname()

    # --- writing (the executor's Recorder) ---------------------------------------------------------------------

    def write(self, run: RunRecord, actions: Sequence[ActionRecord], events: Iterable[Event] = ()) -> None:
        """Insert or update ``run`` and ``actions`` (snapshots; the latest write of an action wins) and add
        ``events`` (an event already stored, same run and ``seq``, is left as it is), in one transaction.

        Raises:
            RecordWriteError: the write failed (disk full, read-only file, locked for longer than the timeout);
                nothing of it was stored.
        """
        run_row = _run_row(run)
        # Rows are made as SQLite takes them, not all at once: a flush of a 100,000-way fan-out would otherwise hold
        # a second copy of every record in memory.
        action_rows = map(_action_row, actions)
        event_rows = list(map(_event_row, events))
        with self._transaction() as conn:
            conn.execute(_UPSERT_RUN, run_row)
            # One executemany in one transaction: a commit per row would cost a WAL append each.
            conn.executemany(_UPSERT_ACTION, action_rows)
            if event_rows:
                conn.executemany(_INSERT_EVENT, event_rows)

    # --- queries -----------------------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _read_run(self, row: Sequence[Any]) -> RunRecord:
        run = _run_from_row(row)
        if is_lost(run, self._host, time.time()):
            run.state = RunState.LOST
        return run

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` most recent runs, newest first."""
        rows = self._fetch(f"{_SELECT_RUN} ORDER BY created DESC, id DESC LIMIT ?", (limit,))
        return [self._read_run(r) for r in rows]

    def run_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of up to ``limit`` runs whose id starts with ``prefix`` (to explain an ambiguous prefix)."""
        # substr() rather than LIKE, so that '%' and '_' in what a user typed are not wildcards.
        rows = self._fetch(
            "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY created DESC LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return [r[0] for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or else the only run whose id starts with it; None if none or several match."""
        rows = self._fetch(f"{_SELECT_RUN} WHERE id = ?", (run_id,))
        if not rows and run_id:
            rows = self._fetch(f"{_SELECT_RUN} WHERE substr(id, 1, ?) = ? LIMIT 2", (len(run_id), run_id))
        return self._read_run(rows[0]) if len(rows) == 1 else None

    def last_seen(self, run: RunRecord) -> float:
        """The last time (epoch seconds) the run's process was known to be alive: when it ended, for a finished
        run; else its heartbeat, or without one the latest time recorded for it (its actions' and events' times,
        or when it was created)."""
        if run.ended is not None and run.state in _FINISHED_RUN:
            return run.ended
        if run.heartbeat is not None:
            return run.heartbeat
        # Multi-argument max() is NULL if any argument is: every one is coalesced, and 0 means nothing recorded.
        (latest,) = self._fetch(
            "SELECT max("
            "coalesce((SELECT max(max(created, coalesce(started, 0), coalesce(ended, 0))) FROM actions"
            " WHERE run_id = ?), 0),"
            "coalesce((SELECT max(time) FROM events WHERE run_id = ?), 0))",
            (run.id, run.id),
        )[0]
        return max(run.created, float(latest))

    def _lost_run(self, run_id: str) -> RunRecord | None:
        rows = self._fetch(f"{_SELECT_RUN} WHERE id = ?", (run_id,))
        run = self._read_run(rows[0]) if rows else None
        return run if run is not None and run.state is RunState.LOST else None

    def actions(self, run_id: str) -> list[ActionRecord]:
        """Every action of the run (exact id), in natural id order: ``0``, ``0.0``, ``0.1``, ``0.2``, ``0.10``.

        Of a lost run, the actions that had not finished come back aborted, ended when the run was last seen.
        """
        rows = self._fetch(f"{_SELECT_ACTION} WHERE run_id = ?", (run_id,))
        rows.sort(key=lambda r: natural_key(r[1]))
        actions = [_action_from_row(r) for r in rows]
        lost = self._lost_run(run_id) if any(not a.state.done for a in actions) else None
        if lost is not None:
            seen = self.last_seen(lost)
            actions = [as_lost(a, seen) for a in actions]
        return actions

    def action(self, run_id: str, action_id: str) -> ActionRecord | None:
        """One action of a run (exact ids), or None; of a lost run, as :meth:`actions` reports it."""
        rows = self._fetch(f"{_SELECT_ACTION} WHERE run_id = ? AND id = ?", (run_id, action_id))
        if not rows:
            return None
        action = _action_from_row(rows[0])
        lost = None if action.state.done else self._lost_run(run_id)
        return action if lost is None else as_lost(action, self.last_seen(lost))

    def events(self, run_id: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """The run's events with ``seq`` greater than ``after_seq``, in order; at most ``limit`` of them."""
        rows = self._fetch(
            f"{_SELECT_EVENT} WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        )
        return [Event(*r) for r in rows]

    def logs(self, run_id: str, action_id: str | None = None) -> str:
        """The tail of the output of one action kept in the records (the whole output is in its log files, see
        ``ActionRecord.log_path``); or, with no ``action_id``, of every action that printed anything, each under a
        header line ``== ACTION TASK ==``, in natural id order. Empty if nothing was captured."""
        if action_id is not None:
            rows = self._fetch("SELECT logs FROM actions WHERE run_id = ? AND id = ?", (run_id, action_id))
            return str(rows[0][0]) if rows else ""
        rows = self._fetch("SELECT id, task, logs FROM actions WHERE run_id = ? AND logs != ''", (run_id,))
        rows.sort(key=lambda r: natural_key(r[0]))
        parts: list[str] = []
        for aid, task, text in rows:
            parts.append(f"== {aid} {task} ==\n")
            parts.append(text if text.endswith("\n") else text + "\n")
        return "".join(parts)
