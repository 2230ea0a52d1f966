"""The ``flytelike`` command: each subcommand is a thin shell over the library."""

from __future__ import annotations

import click

from flytelike._cli._run import run
from flytelike._cli._runs import logs, runs
from flytelike._version import __version__

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="flytelike")
def cli() -> None:
    """flytelike: typed async tasks that declare their compute once and run anywhere.

    \b
    flytelike run examples/hello.py main --name you      run a task here (no server, no account)
    flytelike run --with kubernetes FILE TASK            every task as a pod
    flytelike runs / flytelike logs RUN [ACTION]         history and logs of earlier runs
    """


cli.add_command(run)
cli.add_command(runs)
cli.add_command(logs)


def main() -> None:
    cli(prog_name="flytelike")
