"""Start-up: a whole ``flytelike run examples/hello.py main`` process beside ``python -c "import anyio, click"``, and
``import flytelike`` / ``flytelike --help`` beside ``python -c pass``.

    python benchmarks/bench_startup.py

Median of ``REPEAT`` processes each, the commands taking turns. FLYTELIKE_HOME is a fresh folder, warmed (and every
command's bytecode cached) by one untimed run of each command first; PYTHONDONTWRITEBYTECODE is unset for the
measured processes, since an installed package starts from cached bytecode after its first start.
"""

from __future__ import annotations

import sys

import _common
from _common import Row

REPEAT = 7


def _commands() -> dict[str, list[str]]:
    py = sys.executable
    cli = _common.cli()
    return {
        "pass": [py, "-c", "pass"],
        "anyio_click": [py, "-c", "import anyio, click"],
        "import": [py, "-c", "import flytelike"],
        "help": [*cli, "--help"],
        "hello": [*cli, "run", "--no-progress", "examples/hello.py", "main"],
    }


def startup() -> list[Row]:
    """Start-up: whole hello run, import flytelike, flytelike --help."""
    commands = _commands()
    with _common.fresh_home() as home:
        env = _common.process_env(home)
        for argv in commands.values():  # warm-up: the records database, bytecode caches
            _common.process_seconds(argv, env)
        ms = dict(zip(commands, _common.medians_ms(list(commands.values()), env, REPEAT), strict=True))
    how = f"median of {REPEAT} processes"
    return [
        Row(
            "whole `flytelike run examples/hello.py main`",
            ms["hello"],
            "ms",
            ms["anyio_click"],
            'python -c "import anyio, click"',
            2.5,
            note=f"{how}, --no-progress, FLYTELIKE_HOME warmed by one run; command: {' '.join(commands['hello'])}",
        ),
        Row("import flytelike", ms["import"], "ms", ms["pass"], "python -c pass", 80, absolute=True, note=how),
        Row("flytelike --help", ms["help"], "ms", ms["pass"], "python -c pass", 150, absolute=True, note=how),
    ]


MEASURES = [startup]

if __name__ == "__main__":
    _common.main_for(MEASURES)
