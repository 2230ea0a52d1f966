"""The run records' schema: the tables (from :mod:`flytelike._storage._record_tables`), and records to and from
rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage._record_tables import ACTION_COLUMNS, EVENT_COLUMNS, RUN_COLUMNS, SCHEMA_VERSION

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
