"""The small commands: ``flytelike runs`` on 20 recorded runs, ``flytelike logs RUN`` and ``flytelike --version``,
beside ``python -c "import sqlite3"`` (what reading the records cannot do without).

    python benchmarks/bench_commands.py

Median of ``REPEAT`` processes each, the commands taking turns, in a fresh FLYTELIKE_HOME holding 20 runs of
``examples/hello.py`` (made first, untimed, which also caches every command's bytecode). Where valgrind is
installed, the instructions each process executes too (callgrind's count, the same from one run to the next, so a
change of a few percent shows where wall time on a shared machine cannot).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import _common
from _common import Row

REPEAT = 9
RUNS = 20
TARGET = 2.0


def instructions(argv: list[str], env: dict[str, str]) -> float:
    """Millions of instructions one process of ``argv`` executes, counted by callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        cwd=_common.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-300:]}")
    return int(found.group(1)) / 1e6


def small_commands() -> list[Row]:
    """flytelike runs / logs / --version beside python -c "import sqlite3"."""
    cli = _common.cli()
    with _common.fresh_home() as home:
        env = _common.process_env(home)
        for _ in range(RUNS):
            _common.process_seconds([*cli, "run", "--no-progress", "examples/hello.py", "main"], env)
        listed = subprocess.run([*cli, "runs", "-o", "json"], env=env, capture_output=True, text=True, check=True)
        run_id = json.loads(listed.stdout)[0]["id"]
        commands = {
            "sqlite": [sys.executable, "-c", "import sqlite3"],
            "runs": [*cli, "runs"],
            "logs": [*cli, "logs", run_id],
            "version": [*cli, "--version"],
        }
        for argv in commands.values():
            _common.process_seconds(argv, env)
        ms = dict(zip(commands, _common.medians_ms(list(commands.values()), env, REPEAT), strict=True))
        counted = {name: instructions(argv, env) for name, argv in commands.items()} if shutil.which("valgrind") else {}
    how = f"median of {REPEAT} processes; {RUNS} runs recorded"
    base, label = ms["sqlite"], 'python -c "import sqlite3"'
    rows = [
        Row(f"flytelike runs ({RUNS} runs)", ms["runs"], "ms", base, label, TARGET, note=how),
        Row("flytelike logs RUN", ms["logs"], "ms", base, label, note=how),
        Row("flytelike --version", ms["version"], "ms", base, label, note=how),
    ]
    if counted:
        base = counted["sqlite"]
        rows += [
            Row(f"flytelike runs ({RUNS} runs), instructions", counted["runs"], "M", base, label, TARGET),
            Row("flytelike logs RUN, instructions", counted["logs"], "M", base, label),
            Row("flytelike --version, instructions", counted["version"], "M", base, label),
        ]
    return rows


MEASURES = [small_commands]

if __name__ == "__main__":
    _common.main_for(MEASURES)
