"""Shared pieces of the benchmarks: the row type, the table, timing helpers, and the environment of measured processes.

Importing this module puts the checkout that holds ``benchmarks/`` first on ``sys.path``, so the in-process rows and
the measured subprocesses (whose ``PYTHONPATH`` starts with the same folder) time the same ``flytelike``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Row:
    """One line of the table: a value measured beside a baseline measured in the same run, and its target.

    ``target`` is a ratio (measured / baseline) unless ``absolute``, when it applies to ``measured`` in ``unit``.
    Without a target the row is information only.
    """

    name: str
    measured: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: float | None = None
    absolute: bool = False
    note: str = ""
    error: str = ""

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.baseline:
            return None
        return self.measured / self.baseline

    @property
    def target_text(self) -> str:
        if self.error:
            return "-"
        if self.target is None:
            return "info"
        return f"<= {self.target:g} {self.unit}" if self.absolute else f"<= {self.target:g}x"

    @property
    def status(self) -> str:
        if self.error or self.measured is None:
            return "ERROR"
        if self.target is None:
            return "info"
        value = self.measured if self.absolute else self.ratio
        if value is None:
            return "ERROR"
        return "ok" if value <= self.target else "MISS"


def _num(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cells(row: Row) -> list[str]:
    if row.error:
        return [row.name, "ERROR", row.error, "", row.target_text, row.status]
    measured = f"{_num(row.measured)} {row.unit}" if row.measured is not None else "-"
    baseline = ""
    if row.baseline is not None:
        baseline = f"{row.baseline_label} {_num(row.baseline)} {row.unit}".strip()
    elif row.baseline_label:
        baseline = row.baseline_label
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    return [row.name, measured, baseline, ratio, row.target_text, row.status]


def print_table(rows: list[Row]) -> None:
    """One table, ``benchmark | measured | baseline (same run) | ratio | target | ok?``, then the rows' notes."""
    header = ["benchmark", "measured", "baseline (same run)", "ratio", "target", "ok?"]
    cells = [header, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for i, line in enumerate(cells):
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("-|-".join("-" * w for w in widths))
    notes = [(r.name, r.note) for r in rows if r.note]
    if notes:
        print()
        for name, note in notes:
            print(f"- {name}: {note}")


def run_rows(measures: list[Callable[[], list[Row]]]) -> list[Row]:
    """Call each measure in turn; one that raises becomes an ERROR row (its traceback on stderr), the rest still run."""
    rows: list[Row] = []
    for measure in measures:
        title = (measure.__doc__ or measure.__name__).strip().splitlines()[0].rstrip(".")
        print(f"... {title}", file=sys.stderr, flush=True)
        try:
            rows.extend(measure())
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            message = f"{type(e).__name__}: {e}".replace("\n", " ")
            rows.append(Row(title, None, "", error=message[:160]))
    return rows


def main_for(measures: list[Callable[[], list[Row]]]) -> None:
    """What ``python benchmarks/bench_*.py`` does: measure those rows and print their table."""
    print_header()
    print_table(run_rows(measures))


def print_header() -> None:
    import flytelike

    print(
        f"flytelike {flytelike.__version__} from {Path(flytelike.__file__).parent}; Python {sys.version.split()[0]}; "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
    print()


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Shortest wall time of ``repeat`` calls of ``fn``, with ``gc.collect()`` before each."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@contextlib.contextmanager
def fresh_home() -> Iterator[Path]:
    """A fresh, empty FLYTELIKE_HOME folder, set in ``os.environ`` for the block and removed after it."""
    folder = Path(tempfile.mkdtemp(prefix="flytelike-bench-home-"))
    before = os.environ.get("FLYTELIKE_HOME")
    os.environ["FLYTELIKE_HOME"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("FLYTELIKE_HOME", None)
        else:
            os.environ["FLYTELIKE_HOME"] = before
        shutil.rmtree(folder, ignore_errors=True)


def process_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment of a measured process: this checkout first on PYTHONPATH, ``home`` as FLYTELIKE_HOME, and
    bytecode caching on (PYTHONDONTWRITEBYTECODE unset), as an installed package starts after its first start."""
    env = {**os.environ, "FLYTELIKE_HOME": str(home), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def cli() -> list[str]:
    """The ``flytelike`` command: the console script beside this interpreter, else ``python -m flytelike``."""
    script = Path(sys.executable).parent / "flytelike"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "flytelike"]


def process_seconds(argv: list[str], env: dict[str, str], timeout: float = 120) -> float:
    """Wall time of one process, start to exit; a failing process raises with the end of its stderr."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[-3:])} exited {done.returncode}: {' '.join(tail)}")
    return elapsed


def medians_ms(commands: list[list[str]], env: dict[str, str], repeat: int) -> list[float]:
    """Median wall time in ms of each command, the commands taking turns so drift hits all of them alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for argv, seen in zip(commands, times, strict=True):
            seen.append(process_seconds(argv, env) * 1000)
    return [statistics.median(t) for t in times]
