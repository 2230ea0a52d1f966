"""Start-up: `import flytelike`, `flytelike --help`, and a whole `flytelike run examples/hello.py main`.

python benchmarks/bench_startup.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 7


def _median_ms(argv: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000


def measure() -> list[tuple[str, float, str, str]]:
    env = {**os.environ, "FLYTELIKE_HOME": tempfile.mkdtemp(prefix="flytelike-bench-")}
    # Measure what a user gets: compiled bytecode cached after the first start (as pip does for installed
    # packages), not a recompile of every module on each start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "flytelike", "run", "--no-progress", "examples/hello.py", "main"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    py = sys.executable
    cli = [py, "-m", "flytelike"]
    bare = _median_ms([py, "-c", "pass"], env)
    return [
        ("import flytelike", _median_ms([py, "-c", "import flytelike"], env), "ms", f"python -c pass {bare:.0f}"),
        ("flytelike --help", _median_ms([*cli, "--help"], env), "ms", f"python -c pass {bare:.0f}"),
        (
            "whole `flytelike run examples/hello.py main`",
            _median_ms([*cli, "run", "--no-progress", "examples/hello.py", "main"], env),
            "ms",
            f"python -c pass {bare:.0f}",
        ),
    ]


if __name__ == "__main__":
    for name, value, unit, baseline in measure():
        print(f"{name}: {value:.0f} {unit}   ({baseline} {unit})")
