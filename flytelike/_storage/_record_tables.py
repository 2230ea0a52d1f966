"""The run records' tables: the columns of each (in the order of the records' fields) and the migrations that bring
an older file forward.

Free of the records' classes (and so of dataclasses), for readers that need the file's layout alone: ``flytelike
runs`` lists runs from the rows themselves.
"""

from __future__ import annotations

__all__ = ["ACTION_COLUMNS", "EVENT_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION"]

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
