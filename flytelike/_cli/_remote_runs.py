"""``runs --remote``, ``runs show --remote`` and ``logs --remote``: the same views, read from the control plane."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import click
from google.protobuf.json_format import MessageToDict

from flytelike._cli._remote_run import client_for
from flytelike._proto.remote.v1 import runs_pb2
from flytelike.errors import FlytelikeError

__all__ = ["list_remote", "logs_remote", "show_remote"]


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _duration(run: runs_pb2.Run | runs_pb2.Action, start: float) -> str:
    if not start:
        return "-"
    return f"{(run.ended or time.time()) - start:.2f}s"


def _table(headers: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    rows = [headers, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _guard(main: Any, *args: Any) -> Any:
    try:
        return anyio.run(main, *args)
    except FlytelikeError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)


def list_remote(
    endpoint: str | None,
    *,
    limit: int,
    states: Iterable[str],
    task: str | None,
    since: float | None,
    labels: Mapping[str, str],
    output: str,
) -> None:
    """Print the server's runs, newest first."""

    async def main() -> list[runs_pb2.Run]:
        async with client_for(endpoint) as client:
            return await client.list_runs(
                states=tuple(states), task=task or "", since=since or 0.0, labels=labels, limit=limit
            )

    found = _guard(main)
    if output == "json":
        click.echo(json.dumps([MessageToDict(r, preserving_proto_field_name=True) for r in found], indent=2))
        return
    if not found:
        click.echo("no runs on the server match these filters")
        return
    rows = [(r.id, r.task, r.state, _when(r.created), _duration(r, r.created), str(r.actions)) for r in found]
    click.echo(_table(("ID", "TASK", "STATE", "STARTED", "DURATION", "ACTIONS"), rows))


def show_remote(endpoint: str | None, run_id: str, *, output: str) -> None:
    """Print one run of the server and its actions."""

    async def main() -> tuple[runs_pb2.Run, list[runs_pb2.Action]]:
        async with client_for(endpoint) as client:
            return await client.get_run(run_id), await client.actions(run_id)

    run, actions = _guard(main)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "run": MessageToDict(run, preserving_proto_field_name=True),
                    "actions": [MessageToDict(a, preserving_proto_field_name=True) for a in actions],
                },
                indent=2,
            )
        )
        return
    click.echo(f"run       {run.id}")
    click.echo(f"task      {run.task}")
    click.echo(f"state     {run.state}")
    if run.error:
        click.echo(f"error     {run.error.splitlines()[0]}")
    click.echo(f"started   {_when(run.created)}")
    click.echo(f"duration  {_duration(run, run.created)}")
    click.echo(f"actions   {run.actions}")
    if run.labels:
        click.echo("labels    " + ", ".join(f"{k}={v}" for k, v in sorted(run.labels.items())))
    click.echo("")
    depth = {a.id: a.id.count(".") for a in actions}
    rows = [
        (
            "  " * depth[a.id] + a.id,
            a.task,
            a.state + (f" ({a.failure_kind})" if a.failure_kind else ""),
            str(a.attempts),
            _duration(a, a.started),
        )
        for a in actions
    ]
    click.echo(_table(("ACTION", "TASK", "STATE", "ATTEMPTS", "DURATION"), rows))


def logs_remote(endpoint: str | None, run_id: str, action_id: str | None, *, attempt: int | None, follow: bool) -> None:
    """Print an action's output (default: the root's) from the server; with ``follow``, until the attempt ends."""

    async def main() -> None:
        async with client_for(endpoint) as client:
            async for chunk in client.tail_logs(run_id, action_id or "0", attempt=attempt or 0, follow=follow):
                sys.stdout.buffer.write(chunk.data)
                sys.stdout.buffer.flush()

    _guard(main)
