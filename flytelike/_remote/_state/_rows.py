"""Rows and values of the control plane's records: what goes in and comes out, and how a database is opened."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._state import _schema as s
from flytelike.errors import RecordWriteError, SpecError

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "TERMINAL_ACTION_STATES",
    "TERMINAL_RUN_STATES",
    "Abort",
    "NewRun",
    "RunFilter",
    "apply_event",
    "database_url",
    "event_values",
    "migrate",
    "page_token",
    "parse_page_token",
    "run_message",
    "safe_url",
    "sqlite_pragmas",
]

TERMINAL_RUN_STATES = frozenset({"succeeded", "failed", "aborted", "lost"})
TERMINAL_ACTION_STATES = frozenset({"succeeded", "failed", "timed_out", "aborted", "cached", "recovered"})
MAX_PAGE = 1000
DEFAULT_PAGE = 50
_ACCEPTED_URL = "postgresql://user:password@host:5432/db, sqlite:///absolute/path.sqlite3, or a file path"


def database_url(value: str, *, home: Path) -> str:
    """The SQLAlchemy URL of ``[serve] database``: empty is ``$FLYTELIKE_HOME/server.sqlite3``.

    Raises:
        SpecError: naming ``serve.database``, for a scheme that is neither PostgreSQL nor SQLite.
    """
    if not value:
        return f"sqlite+aiosqlite:///{(home / 'server.sqlite3').absolute()}"
    if value.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + value.split("://", 1)[1]
    if value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return value
    if value.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
    if "://" not in value:
        return f"sqlite+aiosqlite:///{Path(value).expanduser().absolute()}"
    raise SpecError("serve.database", value, "is not a PostgreSQL or SQLite database", accepted=_ACCEPTED_URL)


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to record: everything CreateRun was given, and the token made for it (as its sha256)."""

    id: str
    request: runs_pb2.CreateRunRequest
    task: str
    token_sha256: str
    created: float


@dataclass(frozen=True, slots=True)
class RunFilter:
    """ListRuns' filters and page (see runs.proto)."""

    states: tuple[str, ...] = ()
    task: str = ""
    since: float = 0.0
    labels: Mapping[str, str] | None = None
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class Abort:
    """An abort request recorded and not yet carried out."""

    id: int
    run_id: str
    action_id: str
    reason: str


def page_token(created: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, run_id]).encode()).decode()


def parse_page_token(token: str) -> tuple[float, str]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(created), str(run_id)
    except (ValueError, TypeError) as e:
        raise SpecError(
            "page_token", token, f"is not a page token ({e})", accepted="next_page_token of the previous page"
        ) from None


def run_message(row: Any) -> runs_pb2.Run:
    return runs_pb2.Run(
        id=row.id,
        task=row.task,
        state=row.state,
        created=row.created,
        ended=row.ended or 0.0,
        error=row.error or "",
        labels=json.loads(row.labels_json),
        request_id=row.request_id,
        actions=row.actions,
        bundle_digest=row.bundle_digest,
        platform=row.platform,
        inputs_json=row.inputs_json,
        last_seq=row.last_seq,
    )


def apply_event(current: dict[str, dict[str, Any]], run_id: str, event: runs_pb2.Event) -> None:
    """Move the action row of ``event`` (made if new) to the state the event says."""
    row = current.get(event.action_id)
    if row is None:
        row = current[event.action_id] = {
            "run_id": run_id,
            "action_id": event.action_id,
            "parent": event.parent,
            "task": event.task,
            "state": event.state,
            "attempts": 0,
            "first_seq": event.seq,
            "started": None,
            "ended": None,
            "error": None,
            "failure_kind": None,
        }
    row["state"] = event.state
    row["attempts"] = max(row["attempts"], event.attempt)
    if event.state == "running" and row["started"] is None:
        row["started"] = event.time
    if event.state in TERMINAL_ACTION_STATES:
        row["ended"] = event.time
        row["error"] = event.reason if event.state in ("failed", "timed_out") else None
        row["failure_kind"] = event.kind or None


def event_values(event: runs_pb2.Event) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "action_id": event.action_id,
        "attempt": event.attempt,
        "seq": event.seq,
        "parent": event.parent,
        "task": event.task,
        "state": event.state,
        "time": event.time,
        "kind": event.kind,
        "reason": event.reason,
    }


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (watches, listings) go on while the server writes; NORMAL sync is durable across a crash
    # of the process (not of the machine's power), which is what a restart needs.
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def migrate(connection: Connection) -> None:
    s.schema_version.create(connection, checkfirst=True)
    applied = set(connection.execute(sa.select(s.schema_version.c.version)).scalars())
    newer = {v for v in applied if v > s.SCHEMA_VERSION}
    if newer:
        raise RecordWriteError(
            f"the server database has schema version {max(newer)}, newer than this flytelike knows "
            f"({s.SCHEMA_VERSION}); upgrade flytelike",
            path="the server database",
            cause=f"schema version {max(newer)}",
        )
    for version, step in s.MIGRATIONS:
        if version not in applied:
            step(connection)
            connection.execute(s.schema_version.insert().values(version=version, applied=time.time()))


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparsable URL)"
