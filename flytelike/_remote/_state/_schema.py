"""The control plane's tables (SQLAlchemy Core) and the migrations that build them.

One schema for SQLite and PostgreSQL. Events are append-only and keyed by (run, action, attempt, seq), so a report
delivered twice is stored once; actions hold each action's latest state; aborts are requests recorded before
anything acts on them; logs are the attempts' output, in chunks keyed by their offset.

Migrations are numbered steps applied in order at start, each in its own transaction, and recorded in
``schema_version``; a database written by a newer server (a version this code does not know) is refused rather
than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "aborts", "actions", "events", "labels", "logs", "metadata", "runs"]

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(200), nullable=False, unique=True),
    sa.Column("task", sa.String(400), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("ended", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("labels_json", sa.Text, nullable=False, default="{}"),
    sa.Column("platform", sa.String(400), nullable=False, default=""),
    sa.Column("bundle_digest", sa.String(80), nullable=False),
    sa.Column("inputs_json", sa.Text, nullable=False, default="{}"),
    # The CreateRunRequest as received: what starting the run again needs (templates, inputs, bundle).
    sa.Column("request", sa.LargeBinary, nullable=False),
    sa.Column("outputs", sa.LargeBinary),
    sa.Column("outputs_json", sa.Text),
    # sha256 of the run's token: a leaked database does not leak working tokens.
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False, default=0),
    sa.Column("actions", sa.Integer, nullable=False, default=0),
    sa.Index("runs_created", "created", "id"),
)

labels = sa.Table(
    "run_labels",
    metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.String(400), nullable=False),
    sa.Index("run_labels_key_value", "key", "value"),
)

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("action_id", sa.String(400), primary_key=True),
    sa.Column("parent", sa.String(400), nullable=False, default=""),
    sa.Column("task", sa.String(400), nullable=False, default=""),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("started", sa.Float),
    sa.Column("ended", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("failure_kind", sa.String(20)),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("action_id", sa.String(400), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),  # the run source's own seq of the transition
    # The server's position of the event in the run, 1, 2, 3, ...: what watches page by and clients see as seq.
    # The run's own events (empty action) have no source seq; theirs is their position.
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("parent", sa.String(400), nullable=False, default=""),
    sa.Column("task", sa.String(400), nullable=False, default=""),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False, default=""),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.UniqueConstraint("run_id", "position", name="events_by_position"),
)

aborts = sa.Table(
    "aborts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("action_id", sa.String(400), nullable=False, default=""),  # empty: the whole run
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("requested", sa.Float, nullable=False),
    sa.Column("done", sa.Float),  # when it was carried out; NULL while pending
    sa.Column("outcome", sa.Text),
    sa.Index("aborts_pending", "done"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("action_id", sa.String(400), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("offset", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", sa.Float, nullable=False),
)


def _v1(connection: Connection) -> None:
    metadata.create_all(connection, tables=[runs, labels, actions, events, aborts, logs])


MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = ((1, _v1),)
SCHEMA_VERSION = MIGRATIONS[-1][0]
