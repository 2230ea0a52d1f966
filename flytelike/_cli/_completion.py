"""Shell completion (click's, for bash, zsh and fish): task names of a file, a task's input options, run ids, and
``flytelike completion SHELL``, which prints the script to source.

Completing a task name or its options imports the file, as ``flytelike run`` would; what the file prints then is
discarded (standard output is the completion's answer), and a file that fails to import completes nothing.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from flytelike._cli._run_ids import complete_run_ids
from flytelike._loader import find_task, load_file, tasks_in
from flytelike._task import Task

__all__ = ["TaskInputsCompletion", "complete_run_ids", "complete_task_inputs", "complete_task_names", "completion"]

_SHELLS = ("bash", "zsh", "fish")


def _tasks(ctx: click.Context) -> dict[str, Task[..., Any]]:
    file = ctx.params.get("file")
    if not file:
        return {}
    # Completion must never fail or print: a broken file, or any error while importing it, completes nothing.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return tasks_in(load_file(file))
        except Exception:
            return {}


def complete_task_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The tasks of the file given before (short names, and full ``env.task`` names once a dot is typed)."""
    tasks = _tasks(ctx)
    names = sorted(n for n in tasks if n.startswith(incomplete) and ("." in n) == ("." in incomplete))
    return [CompletionItem(n, help=(tasks[n].fn.__doc__ or "").strip().split("\n")[0]) for n in names]


def complete_task_inputs(ctx: click.Context, param: click.Parameter | None, incomplete: str) -> list[CompletionItem]:
    """The input options of the task given before, typed as ``flytelike run`` takes them."""
    task_name = ctx.params.get("task")
    if not task_name or not incomplete.startswith("-"):
        return []
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            task = find_task(load_file(ctx.params["file"]), task_name)
        except Exception:
            return []
    given = set(ctx.params.get("inputs") or ())
    items = []
    for p in task.interface.inputs:
        dashed = p.name.replace("_", "-")
        options = [f"--{dashed}", f"--no-{dashed}"] if p.type.kind == "bool" else [f"--{dashed}"]
        for option in options:
            if option.startswith(incomplete) and option not in given:
                items.append(CompletionItem(option, help=str(p.type)))
    return items


class TaskInputsCompletion(click.Command):
    """A command whose arguments end in a task's inputs: once FILE and TASK are given, an option being completed
    is one of the task's (click would otherwise offer the command's own options, which go before FILE)."""

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        if ctx.params.get("task"):
            return complete_task_inputs(ctx, None, incomplete)
        return super().shell_complete(ctx, incomplete)


@click.command()
@click.argument("shell", type=click.Choice(_SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; source it from your shell's startup file.

    \b
    bash:  eval "$(flytelike completion bash)"          (in ~/.bashrc)
    zsh:   eval "$(flytelike completion zsh)"           (in ~/.zshrc)
    fish:  flytelike completion fish | source           (in ~/.config/fish/config.fish)
    """
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    root = click.get_current_context().find_root()
    script = cls(root.command, {}, "flytelike", "_FLYTELIKE_COMPLETE").source()
    click.echo(script)
