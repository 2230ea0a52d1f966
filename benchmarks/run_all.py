"""Every benchmark in one table, each beside a baseline measured in the same run, and the target it is held to.

python benchmarks/run_all.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_local
import bench_process
import bench_startup

TARGETS = {
    "in-process fan-out": "<= 0.04",
    "chain of": "<= 0.04",
    "process-isolated": "<= 5",
    "import flytelike": "<= 80",
    "flytelike --help": "<= 150",
    "whole `flytelike run": "<= 400",
}


def main() -> None:
    rows = [*bench_local.measure(), *bench_process.measure(), *bench_startup.measure()]
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'measured':>10}  {'unit':<11} {'target':<8}  baseline (same run)")
    for name, value, unit, baseline in rows:
        target = next((t for k, t in TARGETS.items() if name.startswith(k)), "")
        print(f"{name:<{width}}  {value:>10.4g}  {unit:<11} {target:<8}  {baseline}")


if __name__ == "__main__":
    main()
