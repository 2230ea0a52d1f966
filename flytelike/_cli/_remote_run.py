"""``flytelike run --remote``: bundle, upload what the server lacks, create the run, show it live from its watch.

Exit status as for a local run: 0 succeeded, 1 the run failed (or was aborted or lost), 2 it was refused before it
started. Ctrl-C asks (on a terminal) whether to abort the run on the server; otherwise, or when the answer is no,
it detaches: the run goes on on the server (``flytelike abort RUN`` stops it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, cast

import anyio
import click

from flytelike._config import Settings, load_settings
from flytelike._remote._api import RemoteRun, create_request, remote_token
from flytelike._remote._run_client import RunClient
from flytelike._task import Task
from flytelike.errors import CancelledError, FlytelikeError, RunError, SpecError

__all__ = ["client_for", "run_remote"]

View = Callable[[Any], Coroutine[Any, Any, None]]


def client_for(endpoint: str | None, settings: Settings | None = None) -> RunClient:
    """A client of ``endpoint`` (default ``[remote] endpoint``) with ``[remote]``'s token and CA."""
    settings = settings or load_settings()
    remote = settings.remote
    ca = None
    if remote.tls_ca:
        try:
            ca = Path(remote.tls_ca).expanduser().read_bytes()
        except OSError as e:
            raise SpecError("remote.tls_ca", remote.tls_ca, f"cannot be read ({e.strerror})") from None
    return RunClient(endpoint or remote.endpoint, token=remote_token(settings), tls_ca=ca)


async def _run(
    task: Task[..., Any],
    values: Mapping[str, Any],
    *,
    endpoint: str | None,
    detach: bool,
    name: str | None,
    labels: Mapping[str, str],
    platform: str | None,
    view: View | None,
    output: str,
    started: dict[str, str],
) -> int:
    settings = load_settings()
    async with client_for(endpoint, settings) as client:
        request = await create_request(
            client, task, values, settings=settings, name=name, labels=labels, platform=platform
        )
        created = await client.create_run(request)
        run = RemoteRun(client, created.run, task, created.run_token)
        started["run"] = run.id
        if detach:
            click.echo(run.id)
            return 0
        click.echo(f"run {run.id} on {client.endpoint}", err=True)
        failure: RunError | None = None
        value: Any = None
        async with anyio.create_task_group() as tg:
            if view is not None:
                tg.start_soon(view, run)
            # Caught here, inside the group: escaping it, the error would come out wrapped in an exception group.
            try:
                value = await run.result()
            except RunError as e:
                failure = e
            finally:
                tg.cancel_scope.cancel()
        if isinstance(failure, CancelledError):
            click.echo(f"Error: {failure}", err=True)
            return 1
        if failure is not None:
            click.echo(f"Error: {failure}\nDetails: flytelike runs show --remote {run.id}", err=True)
            return 1
    if output == "json":
        click.echo(json.dumps({"run": run.id, "task": run.task, "outputs": value}, indent=2, default=repr))
    else:
        click.echo(value if isinstance(value, str) else json.dumps(value, default=repr))
    return 0


def run_remote(
    task: Task[..., Any],
    values: Mapping[str, Any],
    *,
    endpoint: str | None,
    detach: bool,
    name: str | None,
    labels: Mapping[str, str],
    platform: str | None,
    view: object,
    output: str,
) -> None:
    """Run ``task`` on the control plane and exit with the status its end calls for."""
    started: dict[str, str] = {}
    try:
        code = anyio.run(
            lambda: _run(
                task,
                values,
                endpoint=endpoint,
                detach=detach,
                name=name,
                labels=labels,
                platform=platform,
                view=cast(View | None, view),
                output=output,
                started=started,
            )
        )
    except KeyboardInterrupt:
        _interrupted(endpoint, started.get("run"))
        sys.exit(130)
    except FlytelikeError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    sys.exit(code)


def _interrupted(endpoint: str | None, run_id: str | None) -> None:
    if run_id is None:
        click.echo("Error: cancelled before the run was created", err=True)
        return
    ask = sys.stdin.isatty() and sys.stderr.isatty()
    if ask and click.confirm(f"\nAbort run {run_id} on the server?", default=False, err=True):
        try:
            recorded = anyio.run(_abort, endpoint, run_id)
        except FlytelikeError as e:
            click.echo(f"Error: {e}", err=True)
            return
        click.echo(f"abort of run {run_id} recorded" if recorded else f"run {run_id} had already ended", err=True)
        return
    click.echo(f"Detached: run {run_id} goes on on the server (flytelike abort {run_id} stops it).", err=True)


async def _abort(endpoint: str | None, run_id: str) -> bool:
    async with client_for(endpoint) as client:
        return await client.abort(run_id, reason="interrupted by the client that started it")
