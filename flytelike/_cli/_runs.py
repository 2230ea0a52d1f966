"""``flytelike runs`` and ``flytelike runs show RUN``: earlier runs, from the records.

Thin shells over :class:`~flytelike._storage.RecordStore`; the store is found through the settings
(``Settings.db_path``), like everything else that depends on ``$FLYTELIKE_HOME``. Output is plain text (or JSON
with ``-o json``), so it pipes and greps well.

A run whose process is gone without having recorded its end is shown as ``lost``, with the time it was last seen
(``lost (last seen 2026-12-01 10:02:11)``; ``last_seen`` in JSON, epoch seconds); its unfinished actions show as
aborted. Nothing here writes to the records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn

import click

from flytelike._cli._labels import parse_label
from flytelike._cli._run_ids import complete_run_ids
from flytelike._cli._runs_list import duration, list_runs, run_duration, run_json, state_text, table, when
from flytelike._config import load_settings
from flytelike._durations import parse_duration
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage import RecordStore
from flytelike.errors import FlytelikeError, SpecError

__all__ = ["runs"]

# Exit code for "no such run/action", the same as click's usage errors: the argument was wrong.
_NOT_FOUND = 2
_FAILED_STATES = frozenset({ActionState.FAILED, ActionState.TIMED_OUT})
_QUIET_STATES = frozenset({ActionState.SUCCEEDED, ActionState.CACHED, ActionState.RECOVERED})
_BINARY_UNITS = (("B", 1), ("Ki", 1024), ("Mi", 1024**2), ("Gi", 1024**3), ("Ti", 1024**4), ("Pi", 1024**5))

_output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


# --- formatting ----------------------------------------------------------------------------------------------------


def _bytes(n: int | None) -> str:
    """Binary units as Kubernetes writes them (``1.5Gi``), one decimal at most; ``-`` for nothing."""
    if not n:
        return "-"
    for unit, size in _BINARY_UNITS:
        value = round(n / size, 1)
        # Move up a unit when rounding reaches 1024, so 1023.96Mi prints as 1Gi rather than 1024Mi.
        if value < 1024 or unit == _BINARY_UNITS[-1][0]:
            text = f"{value:.1f}".removesuffix(".0")
            return text + unit
    raise AssertionError("unreachable: the last unit always returns")


def _cpu(millis: int) -> str:
    if not millis:
        return "-"
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _error_summary(error: str) -> str:
    """The line of an error worth one line: for a traceback its final exception line, else its first line."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        # The final exception's line is the first unindented line after the last frame ("  File ..."); frames'
        # source and caret lines are indented. Searching from the last frame skips chained exceptions, and taking
        # the first line after it keeps only the first line of a multi-line message.
        frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
        for line in lines[frames[-1] + 1 if frames else 1 :]:
            if not line[0].isspace():
                return line
        return lines[-1]
    return lines[0]


def _labels(text: str) -> str:
    try:
        labels = json.loads(text)
    except ValueError:
        return text
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) if isinstance(labels, dict) else text


def _action_json(action: ActionRecord) -> dict[str, Any]:
    data = dataclasses.asdict(action)
    del data["logs"]  # `flytelike logs` is the place for output; it can be large
    del data["outputs"]  # literal bytes, for `flytelike rerun --recover`
    data["duration"] = action.duration
    return data


# --- the store ---------------------------------------------------------------------------------------------------


def _db_path() -> Path:
    try:
        return load_settings().db_path
    except FlytelikeError as e:
        raise click.ClickException(str(e)) from None


@contextmanager
def _store(path: Path) -> Iterator[RecordStore]:
    """The records at ``path``, open; a file that cannot be opened (damaged, unreadable) is an error, not a trace."""
    try:
        store = RecordStore(path)
    except FlytelikeError as e:
        raise click.ClickException(str(e)) from None
    with store:
        yield store


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(_NOT_FOUND)


@contextmanager
def _run_records(run_id: str) -> Iterator[tuple[RecordStore, RunRecord]]:
    """The open store and the run ``run_id`` (an id or a unique prefix); exits with code 2 if there is none."""
    path = _db_path()
    if not path.exists():  # checked so that looking never creates an empty records file
        _fail(f"no run {run_id!r}: no runs recorded yet in {path}")
    with _store(path) as store:
        run = store.run(run_id)
        if run is None:
            matches = store.run_ids(run_id) if run_id else []
            if len(matches) > 1:
                _fail(f"run id prefix {run_id!r} is ambiguous; it matches {', '.join(matches)}")
            _fail(f"no run {run_id!r} in the run records (see `flytelike runs`)")
        yield store, run


# --- commands ------------------------------------------------------------------------------------------------------


def _states(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> frozenset[RunState] | None:
    out = set()
    for text in values:
        for part in text.split(","):
            try:
                out.add(RunState(part.strip().lower()))
            except ValueError:
                accepted = ", ".join(s.value for s in RunState)
                raise click.BadParameter(f"{part!r} is not a run state; accepted: {accepted}") from None
    return frozenset(out) or None


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``1h``/``90m``/``2d`` ago, or an ISO date or time (``2026-12-01``, ``2026-12-01T10:00``, local time)."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - parse_duration(value, field="--since").total_seconds()
    except SpecError:
        raise click.BadParameter(
            f"{value!r} is neither a duration nor a date; accepted: a duration ago (30m, 1h, 2d, 1h30m) or an ISO "
            "date or time (2026-12-01, 2026-12-01T10:00)"
        ) from None


def _label_filters(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    return dict(parse_label(v) for v in values)


@click.group(invoke_without_command=True)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs.")
@click.option(
    "--state",
    "states",
    metavar="STATE",
    multiple=True,
    callback=_states,
    help="Only runs in this state (repeatable, or comma-separated): " + ", ".join(s.value for s in RunState) + ".",
)
@click.option("--task", metavar="TASK", help="Only runs of this root task (env.task, or its name alone).")
@click.option("--since", metavar="WHEN", callback=_since, help="Only runs started since: 1h, 30m, 2d ago, or a date.")
@click.option(
    "--label", "labels", metavar="KEY=VALUE", multiple=True, callback=_label_filters, help="Only runs with this label."
)
@_output_option
@click.option("--remote", is_flag=True, help="List the control plane's runs ([remote] endpoint, or --endpoint).")
@click.option("--endpoint", metavar="URL", help="The control plane (implies --remote). Config: [remote] endpoint.")
@click.pass_context
def runs(
    ctx: click.Context,
    remote: bool,
    endpoint: str | None,
    limit: int,
    states: frozenset[RunState] | None,
    task: str | None,
    since: float | None,
    labels: dict[str, str],
    output: str,
) -> None:
    """List recent runs, newest first (`runs show RUN` for one run's actions). Filters combine: a run is listed
    when it passes every one given."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (remote, endpoint)  # `runs --remote show RUN` reads the server too
        return
    if remote or endpoint:
        # Imported here: the control plane's client loads grpc, which local listings never need.
        from flytelike._cli._remote_runs import list_remote

        chosen = [s.value for s in states] if states else []
        list_remote(endpoint, limit=limit, states=chosen, task=task, since=since, labels=labels, output=output)
        return
    path = _db_path()
    # Opened only if there: listing never creates an empty records file.
    with _store(path) if path.exists() else nullcontext() as store:
        text = list_runs(
            None if store is None else store.fetch,
            limit=limit,
            states=states,
            task=task,
            since=since,
            labels=labels,
            output=output,
        )
    click.echo(text)


_FOLD_OVER = 10
_FOLD_KEEP = 3


def _folded(actions: Sequence[ActionRecord]) -> list[ActionRecord | str]:
    """The action tree in order, with wide fan-outs folded: of more than 10 siblings running the same task, the
    first 3 and every one that did not succeed are listed, the rest summed up in one line (descendants of hidden
    actions are hidden with them)."""
    children: dict[str | None, list[ActionRecord]] = {}
    for a in actions:
        children.setdefault(a.parent, []).append(a)
    out: list[ActionRecord | str] = []

    def walk(parent: str | None, depth: int) -> None:
        by_task: dict[str, list[ActionRecord]] = {}
        labelled: dict[str, list[ActionRecord]] = {}
        for a in children.get(parent, []):
            if a.group_name is None:
                by_task.setdefault(a.task, []).append(a)
            else:
                labelled.setdefault(a.group_name, []).append(a)
        for name, members in labelled.items():
            # An fl.group is one folded node: its size and states, then the members that did not succeed.
            counts = Counter(a.state.value for a in members)
            summary = ", ".join(f"{n:,} {state}" for state, n in sorted(counts.items()))
            out.append(f"{'  ' * depth}group {name}: {len(members):,} actions, {summary} (--all lists them)")
            for a in members:
                if a.state not in _QUIET_STATES:
                    out.append(a)
                    walk(a.id, depth + 1)
        for task, group in by_task.items():
            if len(group) <= _FOLD_OVER:
                shown, hidden = group, []
            else:
                shown = [a for i, a in enumerate(group) if i < _FOLD_KEEP or a.state not in _QUIET_STATES]
                kept = {a.id for a in shown}
                hidden = [a for a in group if a.id not in kept]
            for a in shown:
                out.append(a)
                walk(a.id, depth + 1)
            if hidden:
                counts = Counter(a.state.value for a in hidden)
                summary = ", ".join(f"{n:,} {state}" for state, n in sorted(counts.items()))
                out.append(f"{'  ' * depth}... {len(hidden):,} more {task}: {summary} (--all lists them)")

    walk(None, 0)
    return out


@runs.command()
@click.argument("run_id", metavar="RUN", shell_complete=complete_run_ids)
@click.option("--all", "show_all", is_flag=True, help="List every action, without folding wide fan-outs.")
@_output_option
@click.option("--remote", is_flag=True, help="Show the control plane's run ([remote] endpoint, or --endpoint).")
@click.option("--endpoint", metavar="URL", help="The control plane (implies --remote). Config: [remote] endpoint.")
@click.pass_context
def show(ctx: click.Context, run_id: str, show_all: bool, output: str, remote: bool, endpoint: str | None) -> None:
    """Show one run's action tree: states, attempts, durations, resources requested and used.

    RUN is a run id or a unique prefix of one.
    """
    group_remote, group_endpoint = ctx.obj if isinstance(ctx.obj, tuple) else (False, None)
    endpoint = endpoint or group_endpoint
    if remote or group_remote or endpoint:
        # Imported here: the control plane's client loads grpc, which local listings never need.
        from flytelike._cli._remote_runs import show_remote

        show_remote(endpoint, run_id, output=output)
        return
    with _run_records(run_id) as (store, run):
        actions = store.actions(run.id)
        seen = store.last_seen(run)
    fields = dataclasses.asdict(run)
    if output == "json":
        click.echo(json.dumps({"run": run_json(fields, seen), "actions": [_action_json(a) for a in actions]}, indent=2))
        return
    click.echo(f"run       {run.id}")
    click.echo(f"task      {run.task}")
    click.echo(f"state     {state_text(fields, seen)}")
    if run.state is RunState.LOST:
        where = f"process {run.pid} on {run.host}" if run.pid is not None and run.host else "its process"
        click.echo(f"          {where} is gone or stopped reporting; the run's end was never recorded")
    click.echo(f"started   {when(run.created)}")
    click.echo(f"duration  {duration(run_duration(fields, seen))}")
    click.echo(f"actions   {run.actions}")
    if run.labels_json not in ("", "{}"):
        click.echo(f"labels    {_labels(run.labels_json)}")
    if run.rerun_of:
        click.echo(f"rerun of  {run.rerun_of}")
    recovered = sum(a.state is ActionState.RECOVERED for a in actions)
    if recovered:
        click.echo(f"recovered {recovered} action(s) from earlier runs' outputs")
    if run.error:
        click.echo(f"error     {_error_summary(run.error)}")
    if not actions:
        return
    headers = ("ACTION", "TASK", "STATE", "ATTEMPTS", "DURATION", "CPU", "MEMORY", "GPU", "PEAK MEMORY", "CPU TIME")
    rows: list[tuple[str, ...]] = []
    errors: dict[int, str] = {}
    notes: dict[int, list[str]] = {}
    for entry in list(actions) if show_all else _folded(actions):
        if isinstance(entry, str):
            notes.setdefault(len(rows) - 1, []).append(entry)
            continue
        a, i = entry, len(rows)
        indent = "  " * a.id.count(".")
        rows.append(
            (
                indent + a.id,
                a.task,
                a.state.value,
                str(a.attempts),
                duration(a.duration),
                _cpu(a.cpu_millis),
                _bytes(a.memory),
                str(a.gpus) if a.gpus else "-",
                _bytes(a.peak_memory),
                duration(a.cpu_time),
            )
        )
        if a.state in _FAILED_STATES and a.error:
            errors[i] = f"{indent}    error: {_error_summary(a.error)}"
    lines = table(headers, rows)
    click.echo()
    click.echo(lines[0])
    for i, line in enumerate(lines[1:]):
        click.echo(line)
        if i in errors:
            click.echo(errors[i])
        for note in notes.get(i, ()):
            click.echo(note)
