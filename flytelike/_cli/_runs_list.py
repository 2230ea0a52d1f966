"""What ``flytelike runs`` prints: the listing of recent runs, read from the run records' rows and formatted.

Both ways into the command use :func:`list_runs`: the click command, and the front door of ``flytelike``
(:mod:`flytelike._cli._fast`) that answers the plainest listings without loading click. So it imports neither
click nor the records' classes (dataclasses, typing): a run here is its row as a dict (field -> value, in the
records' field order), which :func:`run_json` turns into what ``-o json`` prints; ``runs show`` gives it a
record's fields the same way.
"""

from __future__ import annotations

import json
import time

from flytelike._storage._liveness import this_host
from flytelike._storage._record_tables import RUN_COLUMNS
from flytelike._storage._run_query import find_runs, row_last_seen

# Annotations only: typing costs the listing more than its query does.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from flytelike._storage._run_query import Fetch

__all__ = ["duration", "list_runs", "run_duration", "run_json", "state_text", "table", "when"]


def when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def run_duration(run: Mapping[str, Any], last_seen: float) -> float:
    # A run still going shows the time elapsed so far; a lost one, the time until it was last seen.
    created: float = run["created"]
    if run["state"] == "lost":
        return max(0.0, last_seen - created)
    return (run["ended"] or time.time()) - created


def state_text(run: Mapping[str, Any], last_seen: float) -> str:
    if run["state"] == "lost":
        return f"lost (last seen {when(last_seen)})"
    return str(run["state"])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]


def run_json(run: Mapping[str, Any], last_seen: float) -> dict[str, Any]:
    """A run's fields as ``-o json`` shows them."""
    data = dict(run)
    del data["inputs"]  # literal bytes, for `flytelike rerun`; "inputs" below is their JSON rendering
    # inputs/outputs are stored as JSON text; nest them as JSON instead of as strings holding JSON.
    for stored, name in (("inputs_json", "inputs"), ("outputs_json", "outputs"), ("labels_json", "labels")):
        text = data.pop(stored)
        try:
            data[name] = None if text is None else json.loads(text)
        except ValueError:
            data[name] = text
    data["duration"] = run_duration(run, last_seen)
    # When its process was last known alive: its end, for a finished run; its heartbeat or latest record otherwise.
    data["last_seen"] = last_seen
    return data


def list_runs(
    fetch: Fetch | None,
    *,
    limit: int,
    states: Iterable[str] | None = None,
    task: str | None = None,
    since: float | None = None,
    labels: Mapping[str, str] | None = None,
    output: str = "text",
) -> str:
    """What ``flytelike runs`` prints (without the final newline), newest run first.

    Args:
        fetch: runs one statement on the run records and returns its rows; None when there are no records yet.
        limit: at most this many runs.
        states: only runs in these states (RunState values), as a reader sees them.
        task: only runs of this root task (``env.task``, or its name alone).
        since: only runs created at or after this time (epoch seconds).
        labels: only runs with every one of these labels.
        output: ``text`` (a table) or ``json``.
    """
    states = None if states is None else frozenset(states)
    records: list[tuple[dict[str, Any], float]] = []
    if fetch is not None:
        found = find_runs(
            fetch,
            limit=limit,
            task=task,
            since=since,
            labels=labels,
            states=states,
            host=this_host(),
            now=time.time(),
        )
        for row, state in found:
            run = dict(zip(RUN_COLUMNS, row, strict=True))
            run["state"] = state
            records.append((run, row_last_seen(fetch, row, state)))
    if output == "json":
        return json.dumps([run_json(r, seen) for r, seen in records], indent=2)
    if not records:
        filtered = states or task or since is not None or labels
        return "no runs match these filters" if filtered else "no runs recorded yet"
    rows = [
        (
            r["id"],
            r["task"],
            state_text(r, seen),
            when(r["created"]),
            duration(run_duration(r, seen)),
            str(r["actions"]),
        )
        for r, seen in records
    ]
    return "\n".join(table(("ID", "TASK", "STATE", "STARTED", "DURATION", "ACTIONS"), rows))
