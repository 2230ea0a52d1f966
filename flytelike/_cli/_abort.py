"""``flytelike abort RUN [ACTION]``: ask the control plane to abort a run, or one of its actions."""

from __future__ import annotations

import sys

import anyio
import click

from flytelike._cli._remote_run import client_for
from flytelike.errors import FlytelikeError

__all__ = ["abort"]


async def _abort(endpoint: str | None, run_id: str, action_id: str, reason: str) -> bool:
    async with client_for(endpoint) as client:
        return await client.abort(run_id, action_id, reason=reason)


@click.command(short_help="Abort a run (or one action) on the control plane.")
@click.option("--endpoint", metavar="URL", help="The server; default [remote] endpoint (FLYTELIKE_REMOTE__ENDPOINT).")
@click.option("--reason", default="", help="Why, recorded with the abort.")
@click.argument("run_id", metavar="RUN")
@click.argument("action_id", metavar="[ACTION]", required=False, default="")
def abort(endpoint: str | None, reason: str, run_id: str, action_id: str) -> None:
    """Ask the server to abort RUN, or only ACTION of it. The request is recorded at once and carried out by the
    server; `flytelike runs show --remote RUN` shows the outcome."""
    try:
        recorded = anyio.run(_abort, endpoint, run_id, action_id, reason)
    except FlytelikeError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    what = f"action {action_id} of run {run_id}" if action_id else f"run {run_id}"
    click.echo(f"abort of {what} recorded" if recorded else f"{what} had already ended; nothing to abort")
