"""The queries of runs, on rows: which runs a listing shows, in what state a reader sees each, and when each run's
process was last seen.

:class:`~flytelike._storage.RecordStore` answers with these and makes records of the rows; ``flytelike runs``
formats the rows themselves, so that listing runs loads no more than ``sqlite3`` (the records' classes are
dataclasses, whose import alone costs more than the whole listing may). A query is given ``fetch``, which runs
one statement and returns its rows, so the same SQL serves a store's connection and a bare one.
"""

from __future__ import annotations

from flytelike._storage._liveness import UNFINISHED_RUN, lost
from flytelike._storage._record_tables import RUN_COLUMNS

# Annotations only: typing costs a listing more than its query does.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    Fetch = Callable[[str, Sequence[Any]], list[Any]]

__all__ = ["FINISHED_RUN", "RUN_STATES", "SELECT_RUN", "find_runs", "last_seen", "read_state", "row_last_seen"]

# The values of RunState, in its order (a test pins them): what `--state` accepts.
RUN_STATES = ("queued", "running", "succeeded", "failed", "aborted", "lost")
FINISHED_RUN = frozenset({"succeeded", "failed", "aborted"})
SELECT_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
_STATE, _CREATED, _ENDED = RUN_COLUMNS.index("state"), RUN_COLUMNS.index("created"), RUN_COLUMNS.index("ended")
_PID, _HOST, _HEARTBEAT = RUN_COLUMNS.index("pid"), RUN_COLUMNS.index("host"), RUN_COLUMNS.index("heartbeat")
# Multi-argument max() is NULL if any argument is: every one is coalesced, and 0 means nothing recorded.
_LATEST = (
    "SELECT max("
    "coalesce((SELECT max(max(created, coalesce(started, 0), coalesce(ended, 0))) FROM actions"
    " WHERE run_id = ?), 0),"
    "coalesce((SELECT max(time) FROM events WHERE run_id = ?), 0))"
)


def read_state(row: Sequence[Any], *, host: str, now: float) -> str:
    """The state of a run row (in ``RUN_COLUMNS`` order) as a reader on ``host`` sees it at ``now``: its stored
    state, or ``lost`` when its process is gone (see :mod:`flytelike._storage._liveness`)."""
    state = str(row[_STATE])
    gone = lost(state, row[_HEARTBEAT], row[_PID], row[_HOST], row[_CREATED], host=host, now=now)
    return "lost" if gone else state


def find_runs(
    fetch: Fetch,
    *,
    limit: int,
    task: str | None = None,
    since: float | None = None,
    labels: Mapping[str, str] | None = None,
    states: Iterable[str] | None = None,
    host: str,
    now: float,
) -> list[tuple[Sequence[Any], str]]:
    """The ``limit`` most recent runs, newest first, of those that pass every filter given: each as its row (in
    ``RUN_COLUMNS`` order) and its state as read (see :func:`read_state`). The filters are those of
    :meth:`RecordStore.runs <flytelike._storage.RecordStore.runs>`; states are RunState values."""
    where: list[str] = []
    params: list[Any] = []
    if task is not None:
        where.append("(task = ? OR substr(task, -?) = ?)")
        params += [task, len(task) + 1, "." + task]
    if since is not None:
        where.append("created >= ?")
        params.append(since)
    for key, value in (labels or {}).items():
        where.append("json_extract(labels_json, ?) = ?")
        params += [f'$."{key}"', value]
    wanted = None if states is None else frozenset(str(s) for s in states)
    if wanted is not None:
        # LOST is decided on read; a lost run is stored as queued or running.
        stored = set(UNFINISHED_RUN) if "lost" in wanted else set()
        stored |= wanted - {"lost"}
        # Sorted, so the statement (and SQLite's cache of it) is the same whatever order the states came in.
        where.append(f"state IN ({', '.join('?' * len(stored))})")
        params += sorted(stored)
    sql = SELECT_RUN + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY created DESC, id DESC"
    if wanted is None:
        return [(row, read_state(row, host=host, now=now)) for row in fetch(f"{sql} LIMIT ?", (*params, limit))]
    found: list[tuple[Sequence[Any], str]] = []
    for row in fetch(sql, params):
        state = read_state(row, host=host, now=now)
        if state in wanted:
            found.append((row, state))
            if len(found) == limit:
                break
    return found


def last_seen(
    fetch: Fetch, run_id: str, *, state: str, created: float, ended: float | None, heartbeat: float | None
) -> float:
    """The last time (epoch seconds) a run's process was known to be alive: when it ended, for a finished run;
    else its heartbeat, or without one the latest time recorded for it (its actions' and events' times, or when
    it was created)."""
    if ended is not None and state in FINISHED_RUN:
        return ended
    if heartbeat is not None:
        return heartbeat
    (latest,) = fetch(_LATEST, (run_id, run_id))[0]
    return max(created, float(latest))


def row_last_seen(fetch: Fetch, row: Sequence[Any], state: str) -> float:
    """:func:`last_seen` of a run row (in ``RUN_COLUMNS`` order) read in ``state``."""
    return last_seen(fetch, row[0], state=state, created=row[_CREATED], ended=row[_ENDED], heartbeat=row[_HEARTBEAT])
