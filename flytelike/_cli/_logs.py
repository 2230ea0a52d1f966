"""``flytelike logs RUN [ACTION]``: what a run's tasks printed, from the records."""

from __future__ import annotations

import click

from flytelike._cli._runs import _fail, _run_records

__all__ = ["logs"]


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("action_id", metavar="[ACTION]", required=False)
def logs(run_id: str, action_id: str | None) -> None:
    """Print what a run's tasks printed (stdout and stderr, as captured).

    RUN is a run id or a unique prefix of one. Without ACTION, every action that printed anything is shown under a
    header line `== ACTION TASK ==`.
    """
    with _run_records(run_id) as (store, run):
        if action_id is None:
            text = store.logs(run.id)
        else:
            action = store.action(run.id, action_id)
            if action is None:
                _fail(f"run {run.id} has no action {action_id!r} (see `flytelike runs show {run.id}`)")
            text = "".join(action.logs or ())
    if not text:
        click.echo("(no output captured)", err=True)
        return
    click.echo(text, nl=not text.endswith("\n"))
