"""``flytelike run FILE TASK [--input value ...]``.

SIGTERM and SIGHUP (a supervisor stopping the process, a closed terminal) are handled like Ctrl-C: the run is
cancelled and recorded as aborted, and the process exits with 128 + the signal's number, as a shell reports a
process ended by that signal: 130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP. The handlers are installed
by this command only, while it loads and runs the task, and the previous ones restored afterwards; the library
installs none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from flytelike._cli._completion import TaskInputsCompletion, complete_task_inputs, complete_task_names
from flytelike._cli._params import inputs_from_file, label_option, name_option, reject_unknown_option, task_command
from flytelike._cli._progress import Verbosity, plain_view
from flytelike._files import Dir, File
from flytelike._loader import find_task, load_file
from flytelike._run_context import RunContext
from flytelike._runner import Runner
from flytelike.errors import AdmissionError, FlytelikeError, TaskFailedError, ValueConversionError

__all__ = ["run"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, File | Dir):
        return value.path
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def admission_hint(error: AdmissionError) -> str:
    """The error, and what to do about it with this command's flags and settings."""
    hint = (
        "Run it where it fits with `--with kubernetes` or `--with batch`, or run it here anyway with "
        '`flytelike run --local-resources ignore` (config: [local] resources = "ignore").'
    )
    if error.strict:
        hint += ' (strict mode is on: [local] resources = "strict")'
    return f"{error}. {hint}"


def _fail(message: str, code: int = 1, runner: Runner | None = None) -> None:
    click.echo(f"Error: {message}", err=True)
    _exit(code, runner)


def _exit(code: int, runner: Runner | None) -> None:
    if runner is not None and runner.threads_running:
        # A sync task's thread cannot be interrupted (one that timed out, or was cancelled, runs on); exiting
        # normally would wait for it to finish. The run's records are written already.
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _first_failure(error: TaskFailedError) -> str:
    """The action where the failure started: a parent that failed because its child did names the child."""
    action = error.origin_action
    cause = error.__cause__
    while isinstance(cause, TaskFailedError):
        action = cause.origin_action
        cause = cause.__cause__
    return action


# Signals that stop a run the way Ctrl-C does. SIGHUP does not exist on Windows.
_STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _stop_like_ctrl_c(received: list[int]) -> Callable[[], None]:
    """Make SIGTERM and SIGHUP do what Ctrl-C does, appending each one received to ``received``; returns the
    function that restores the previous handlers.

    A signal is passed on to whatever handles SIGINT at that moment: while the run executes, the event loop's
    handler, which cancels the run (so it is recorded as aborted) and raises KeyboardInterrupt once it has
    stopped; before and after, Python's default, which raises KeyboardInterrupt at once.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):
            on_sigint(signal.SIGINT, frame)
        else:  # SIGINT ignored (a shell's background job) or reset: stop anyway
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return _nothing  # only the main thread may install handlers
    previous = {s: signal.signal(s, handle) for s in _STOP_SIGNALS}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def _nothing() -> None:
    """Nothing to restore."""


def _view(progress: bool, verbose: bool, quiet: bool) -> Any:
    """The progress view for these flags: the live tree on a terminal, plain lines elsewhere, or none."""
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet cannot be given together")
    if not progress:
        return None
    if sys.stderr.isatty() and not quiet:
        # Imported here: rich costs a run's start-up a fifth, and runs to a pipe or a file do not use it.
        from flytelike._cli._live import live_view

        return live_view
    verbosity: Verbosity = "quiet" if quiet else "verbose" if verbose else "normal"
    return functools.partial(plain_view, verbosity=verbosity)


def _showwarning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.command(
    cls=TaskInputsCompletion,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a task of a Python file.",
)
@click.option(
    "--with",
    "with_",
    metavar="PLATFORM[:k=v,...]",
    help="Run every task without a platform there: kubernetes, batch:cpu=8,memory=32768,queue=q, local.",
)
@click.option(
    "--local-resources",
    type=click.Choice(["check", "strict", "ignore"]),
    default=None,
    help="check (default): fail memory that can never fit here, warn for cpu/GPUs; strict: fail those too; "
    "ignore: run anyway. Config: [local] resources.",
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", help="How to print outputs.")
@click.option("--progress/--no-progress", default=True, help="Show the action tree while it runs (stderr).")
@click.option("-v", "--verbose", is_flag=True, help="Not on a terminal: a line for every state change of every action.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures on stderr (no live tree, start line or summary).")
@name_option
@label_option
@click.option(
    "--inputs-file",
    metavar="PATH",
    help="A JSON or YAML mapping of the task's inputs; options after TASK win over it.",
)
@click.argument("file", type=click.Path(dir_okay=False), callback=reject_unknown_option)
@click.argument("task", shell_complete=complete_task_names)
@click.argument("inputs", nargs=-1, type=click.UNPROCESSED, shell_complete=complete_task_inputs)
def run(
    with_: str | None,
    local_resources: str | None,
    output: str,
    progress: bool,
    verbose: bool,
    quiet: bool,
    name: str | None,
    label: dict[str, str],
    inputs_file: str | None,
    file: str,
    task: str,
    inputs: tuple[str, ...],
) -> None:
    """Run TASK of FILE here (no server, no account), with its inputs as options.

    \b
    flytelike run examples/hello.py main --name you
    flytelike run examples/train.py main --n 3 --with batch:queue=gpu
    flytelike run examples/train.py main --help      # the task's inputs
    flytelike run --name nightly --label team=ml --inputs-file inputs.yaml examples/train.py main
    """
    warnings.showwarning = _showwarning
    received: list[int] = []
    restore = _nothing
    runner: Runner | None = None
    try:
        restore = _stop_like_ctrl_c(received)
        module = load_file(file)
        target = find_task(module, task, source=file)
        command = task_command(
            f"flytelike run {file} {task}", target.interface.inputs, target.full_name, target.fn.__doc__
        )
        defaults = None
        if inputs_file is not None:
            try:
                defaults = inputs_from_file(inputs_file, target.interface.inputs, target.full_name)
            except ValueConversionError as e:
                raise click.BadParameter(str(e), param_hint="'--inputs-file'") from None
        values = command.main(
            list(inputs), standalone_mode=False, prog_name=f"flytelike run {file} {task}", default_map=defaults
        )
        if not isinstance(values, dict):  # --help was printed
            return
        view = _view(progress, verbose, quiet)
        # Outputs are recorded so that `flytelike rerun --recover` can reuse what succeeded.
        context = RunContext.build(name=name, labels=label, record_outputs=True)
        runner = Runner(platform=with_, local_resources=local_resources, progress=view, context=context)  # type: ignore[arg-type]
        handle = runner.run(target, **values)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except KeyboardInterrupt:
        code = 128 + (received[0] if received else signal.SIGINT)
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone; the exit code still tells
            click.echo("Error: cancelled; the run is recorded as aborted (flytelike runs)", err=True)
        _exit(code, runner)
    except TaskFailedError as e:
        run_id = getattr(e, "run_id", None)
        failed = _first_failure(e)
        hint = f"\nDetails: flytelike runs show {run_id}   Logs: flytelike logs {run_id} {failed}" if run_id else ""
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
        click.echo(json.dumps({"run": handle.id, "task": handle.task, "outputs": result}, indent=2))
    else:
        click.echo(result if isinstance(result, str) else json.dumps(result))
    if runner is not None and runner.threads_running:
        _exit(0, runner)
