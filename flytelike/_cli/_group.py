"""The ``flytelike`` command group (click): each subcommand is a thin shell over the library.

Subcommands are imported only when invoked, so ``flytelike --help`` does not load the runtime.
"""

from __future__ import annotations

import gc
import importlib
from types import ModuleType

import click

from flytelike._version import __version__

__all__ = ["cli"]

# name -> (module, attribute, one-line help shown by `flytelike --help`)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("flytelike._cli._run", "run", "Run a task of a Python file."),
    "runs": ("flytelike._cli._runs", "runs", "List earlier runs; `runs show RUN` for one run's action tree."),
    "rerun": ("flytelike._cli._rerun", "rerun", "Run an earlier run's task again; --recover reuses what succeeded."),
    "serve": ("flytelike._cli._serve", "serve", "Run the control plane that --remote commands and fl.Remote use."),
    "abort": ("flytelike._cli._abort", "abort", "Abort a run, or one of its actions, on the control plane."),
    "logs": ("flytelike._cli._logs", "logs", "Print what a run's tasks wrote to stdout and stderr."),
    "serialize": ("flytelike._cli._serialize", "serialize", "Write protobuf task templates of a file's tasks."),
    "show": ("flytelike._cli._serialize", "show", "Print one task's template."),
    "bundle": ("flytelike._cli._bundle", "bundle", "Show what of a project would ship as its code bundle."),
    "emulator": ("flytelike._cli._emulator", "emulator", "Run a Kubernetes (or other backend's) emulator here."),
    "config": ("flytelike._cli._config", "config", "Write a commented config file, or show each setting's source."),
    "completion": ("flytelike._cli._completion", "completion", "Print the shell completion script (bash, zsh, fish)."),
}


def _import_quickly(name: str) -> ModuleType:
    """Import a subcommand's module (and the library under it) with the cyclic garbage collector paused.

    An import creates tens of thousands of objects that live as long as the process (modules, classes,
    functions); the collector would walk them again and again while they are made, a tenth of a `flytelike run`'s
    start-up. They are moved to the permanent generation afterwards (``gc.freeze``), so later collections skip
    them too, and collection resumes as it was before the command's own work (loading the user's file, the run)
    starts. Only the command does this, as it alone owns the process; the library changes no process-wide state.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command = getattr(_import_quickly(entry[0]), entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in _COMMANDS.items()])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="flytelike")
def cli() -> None:
    """flytelike: typed async tasks that declare their compute once and run anywhere.

    \b
    flytelike run examples/hello.py main --name you      run a task here (no server, no account)
    flytelike run --with kubernetes FILE TASK            every task as a pod
    flytelike runs / flytelike logs RUN [ACTION]         history and logs of earlier runs
    """
