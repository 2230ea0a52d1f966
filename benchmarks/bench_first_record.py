"""First record of a 100,000-way fan-out visible to ``flytelike runs``, beside the time a process takes to
``import flytelike`` and exit.

    python benchmarks/bench_first_record.py

Starts ``flytelike run --no-progress benchmarks/_tasks.py main --n 100000`` with a fresh FLYTELIKE_HOME and polls
``$FLYTELIKE_HOME/runs.sqlite3`` (opened read-only; it may not exist yet) every few milliseconds until the run's
record appears; then confirms once with ``flytelike runs -o json`` that the run is listed. The figure is the time from
starting the process to the first poll that saw the record. If the record never appears that way while the run goes
on, ``flytelike runs -o json`` is asked after the process exits, and the row reports the exit time.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import Row

N = 100_000
POLL = 0.005
TIMEOUT = 240.0
TARGET = 1.0  # seconds after start


def _sqlite_run_ids(db: Path) -> list[str]:
    """Run ids in the records database, read-only; none while it or its table does not exist yet, or is busy."""
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error:
        return []
    try:
        return [row[0] for row in conn.execute("SELECT id FROM runs")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _cli_run_ids(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [*_common.cli(), "runs", "-o", "json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode:
        raise RuntimeError(f"flytelike runs exited {done.returncode}: {done.stderr.strip()[-200:]}")
    return [r["id"] for r in json.loads(done.stdout or "[]")]


def first_record() -> list[Row]:
    """First record of a 100,000-way fan-out visible to flytelike runs."""
    with _common.fresh_home() as home, tempfile.TemporaryFile() as stderr:
        env = _common.process_env(home)
        imports = [_common.process_seconds([sys.executable, "-c", "import flytelike"], env) for _ in range(5)]
        db = home / "runs.sqlite3"
        argv = [*_common.cli(), "run", "--no-progress", str(_common.BENCH / "_tasks.py"), "main", "--n", str(N)]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=_common.ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            seen, ids, how = None, [], "sqlite poll"
            while time.perf_counter() - started < TIMEOUT:
                ids = _sqlite_run_ids(db)
                if ids:
                    seen = time.perf_counter() - started
                    break
                if proc.poll() is not None:
                    break
                time.sleep(POLL)
            if seen is None and proc.poll() is not None:
                ids = _cli_run_ids(env)
                seen, how = time.perf_counter() - started, "after the process exited (flytelike runs)"
            if seen is None or not ids:
                raise RuntimeError(f"no run record within {time.perf_counter() - started:.0f} s")
            listed = set(ids) <= set(_cli_run_ids(env))
            proc.wait(timeout=max(1.0, TIMEOUT - (time.perf_counter() - started)))
            total = time.perf_counter() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-2:]
            raise RuntimeError(f"flytelike run exited {proc.returncode}: {' '.join(tail)}")
    if not listed:
        raise RuntimeError(f"run {ids} seen in runs.sqlite3 but not listed by `flytelike runs -o json`")
    return [
        Row(
            f"first record of {N:,}-way fan-out visible",
            seen,
            "s",
            statistics.median(imports),
            'python -c "import flytelike"',
            TARGET,
            absolute=True,
            note=f"from starting `flytelike run` to the record, seen by {how}, confirmed by `flytelike runs -o json`"
            f"; the whole run took {total:.1f} s; baseline: median of 5",
        )
    ]


MEASURES = [first_record]

if __name__ == "__main__":
    _common.main_for(MEASURES)
