"""``flytelike rerun RUN [--recover] [--set k=v ...]``: an earlier run's task again, with its recorded inputs.

The task is found again from the file the run recorded (its absolute path) and the task's full name; the inputs
are decoded from the run's literal bytes with the task's interface as it is now, so an input that changed type
is an error naming it. ``--set k=v`` overrides an input, typed as ``flytelike run`` types its options.

With ``--recover``, every action of the earlier run that succeeded (or was cached, or recovered itself) is reused
from its recorded outputs when the new run reaches an action with the same id, the same task version and the same
inputs; the rest (what failed, what never started, and anything whose code or inputs changed) runs again. Recovered
actions are in state ``recovered`` in the progress view and in ``flytelike runs show``.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from flytelike._cli._params import as_default, from_json, label_option, name_option, task_command
from flytelike._cli._run import (
    _exit,
    _fail,
    _jsonable,
    _nothing,
    _showwarning,
    _stop_like_ctrl_c,
    _view,
    admission_hint,
)
from flytelike._cli._run_ids import complete_run_ids
from flytelike._cli._runs import _run_records
from flytelike._executor import RunRecord
from flytelike._loader import find_task, load_file
from flytelike._run_context import RunContext
from flytelike._runner import Runner
from flytelike._serde import decode_values
from flytelike._task import Task
from flytelike.errors import AdmissionError, FlytelikeError, TaskFailedError, ValueConversionError

__all__ = ["rerun"]


def _task_of(run: RunRecord) -> Task[..., Any]:
    if not run.file:
        raise click.ClickException(
            f"run {run.id} did not record the file of its task (it was made by an older flytelike); run it again "
            "with `flytelike run FILE TASK`"
        )
    if not Path(run.file).is_file():
        raise click.ClickException(f"the file of run {run.id}'s task, {run.file}, is gone")
    return find_task(load_file(run.file), run.task, source=run.file)


def _recorded_inputs(run: RunRecord, task: Task[..., Any]) -> dict[str, Any]:
    """The run's inputs as values of the task's types; from their literal bytes, or (older records) their JSON."""
    where = f"{task.full_name} (inputs of run {run.id})"
    if run.inputs is not None:
        return decode_values(run.inputs, task.interface.inputs, where=where)
    try:
        data = json.loads(run.inputs_json)
    except ValueError:
        raise ValueConversionError(f"{where}: the recorded inputs are not JSON: {run.inputs_json[:200]}") from None
    params = {p.name: p for p in task.interface.inputs}
    return {k: from_json(params[k].type, v, f"{where}({k})") for k, v in data.items() if k in params}


def _set_args(sets: tuple[str, ...], task: Task[..., Any]) -> list[str]:
    """``--set k=v`` as the task's own options (``--k v``), so they are typed exactly as ``flytelike run``'s."""
    params = {p.name: p for p in task.interface.inputs}
    args: list[str] = []
    for text in sets:
        key, sep, value = text.partition("=")
        name = key.replace("-", "_")
        if not sep or not key:
            raise click.BadParameter(f"{text!r} is not INPUT=VALUE; accepted: e.g. n=3", param_hint="'--set'")
        param = params.get(name)
        if param is None:
            close = difflib.get_close_matches(name, list(params), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise click.BadParameter(
                f"{task.full_name} has no input {key!r}{hint} (inputs: {', '.join(params) or 'none'})",
                param_hint="'--set'",
            )
        dashed = name.replace("_", "-")
        if param.type.kind == "bool":
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise click.BadParameter(f"{text!r}: {name} is a bool; accepted: true or false", param_hint="'--set'")
            args.append(f"--{dashed}" if lowered in ("true", "1", "yes") else f"--no-{dashed}")
        else:
            args += [f"--{dashed}", value]
    return args


@click.command(short_help="Run an earlier run's task again; --recover reuses what succeeded.")
@click.argument("run_id", metavar="RUN", shell_complete=complete_run_ids)
@click.option("--recover", is_flag=True, help="Reuse every action that succeeded in RUN; run only the rest.")
@click.option("--set", "sets", metavar="INPUT=VALUE", multiple=True, help="Override a recorded input (repeatable).")
@click.option("--with", "with_", metavar="PLATFORM[:k=v,...]", help="Where tasks without a platform run.")
@name_option
@label_option
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", help="How to print outputs.")
@click.option("--progress/--no-progress", default=True, help="Show the action tree while it runs (stderr).")
def rerun(
    run_id: str,
    recover: bool,
    sets: tuple[str, ...],
    with_: str | None,
    name: str | None,
    label: dict[str, str],
    output: str,
    progress: bool,
) -> None:
    """Run RUN's task again with its recorded inputs (RUN: an id or a unique prefix).

    \b
    flytelike rerun r20261201-101500-3f9a2c                 the same task, the same inputs
    flytelike rerun r20261201-101500-3f9a2c --set n=5       one input changed
    flytelike rerun r20261201-101500-3f9a2c --recover       reuse what succeeded; rerun failed and not-started work
    """
    warnings.showwarning = _showwarning
    with _run_records(run_id) as (store, earlier):
        reusable = len(store.recovery(earlier.id)) if recover else 0
    if recover and not reusable:
        click.echo(
            f"Warning: run {earlier.id} kept no outputs of actions that succeeded (only runs that record outputs do, "
            "as `flytelike run` does); everything runs again",
            err=True,
        )
    received: list[int] = []
    restore = _nothing
    runner: Runner | None = None
    try:
        restore = _stop_like_ctrl_c(received)
        task = _task_of(earlier)
        recorded = _recorded_inputs(earlier, task)
        params = {p.name: p for p in task.interface.inputs}
        defaults = {k: as_default(params[k].type, v) for k, v in recorded.items()}
        prog = f"flytelike rerun {earlier.id}"
        command = task_command(prog, task.interface.inputs, task.full_name, task.fn.__doc__)
        values = command.main(_set_args(sets, task), standalone_mode=False, prog_name=prog, default_map=defaults)
        assert isinstance(values, dict)
        labels = {**json.loads(earlier.labels_json or "{}"), **label}
        context = RunContext.build(name=name, labels=labels, record_outputs=True, rerun_of=earlier.id, recover=recover)
        platform = with_ or (earlier.platform if earlier.platform != "local" else None)
        view = _view(progress, verbose=False, quiet=False)
        runner = Runner(platform=platform, progress=view, context=context)
        handle = runner.run(task, **values)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except KeyboardInterrupt:
        code = 128 + (received[0] if received else signal.SIGINT)
        with contextlib.suppress(OSError):
            click.echo("Error: cancelled; the run is recorded as aborted (flytelike runs)", err=True)
        _exit(code, runner)
    except TaskFailedError as e:
        new_id = getattr(e, "run_id", None)
        hint = f"\nDetails: flytelike runs show {new_id}   Rerun: flytelike rerun {new_id} --recover" if new_id else ""
        _fail(f"{e}{hint}", 1, runner)
        return
    except AdmissionError as e:
        _fail(admission_hint(e), 2 if not getattr(e, "run_id", None) else 1, runner)
        return
    except FlytelikeError as e:
        _fail(str(e), 2 if not getattr(e, "run_id", None) else 1, runner)
        return
    finally:
        restore()
    result = _jsonable(handle.outputs)
    if output == "json":
        click.echo(
            json.dumps({"run": handle.id, "rerun_of": earlier.id, "task": handle.task, "outputs": result}, indent=2)
        )
    else:
        click.echo(result if isinstance(result, str) else json.dumps(result))
    if runner is not None and runner.threads_running:
        _exit(0, runner)
