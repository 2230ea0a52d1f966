"""The run records' schema: the columns of each table (in the order of the records' fields), the migrations
that bring an older file forward, and records to and from rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState

__all__ = [
    "ACTION_COLUMNS",
    "EVENT_COLUMNS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "action_from_row",
    "action_row",
    "event_row",
    "run_from_row",
    "run_row",
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
    "inputs",
    "file",
    "rerun_of",
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
    "inputs_digest",
    "outputs",
    "recovered_from",
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
        # What a rerun needs: a run's inputs as literal bytes, the file of its task and the run it reran; an
        # action's inputs digest and outputs (kept by runs that record outputs), and where a recovered one came from.
        "ALTER TABLE runs ADD COLUMN inputs BLOB",
        "ALTER TABLE runs ADD COLUMN file TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN rerun_of TEXT",
        "ALTER TABLE actions ADD COLUMN inputs_digest TEXT",
        "ALTER TABLE actions ADD COLUMN outputs BLOB",
        "ALTER TABLE actions ADD COLUMN recovered_from TEXT",
    ),
    (
        # Output moved to log files (flytelike._storage._spool); `logs` keeps only a tail of it.
        "ALTER TABLE actions ADD COLUMN log_path TEXT",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


def run_row(r: RunRecord) -> tuple[Any, ...]:
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
        r.inputs,
        r.file,
        r.rerun_of,
    )


def action_row(a: ActionRecord) -> tuple[Any, ...]:
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
        a.inputs_digest,
        a.outputs,
        a.recovered_from,
        a.log_path,
    )


def run_from_row(row: Sequence[Any]) -> RunRecord:
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
        inputs=row[14],
        file=row[15],
        rerun_of=row[16],
    )


def action_from_row(row: Sequence[Any]) -> ActionRecord:
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
        inputs_digest=row[22],
        outputs=row[23],
        recovered_from=row[24],
        log_path=row[25],
    )


def event_row(e: Event) -> tuple[Any, ...]:
    return (e.run_id, e.seq, e.action, e.state, e.attempt, e.time, e.kind, e.reason)
