"""Every local-runtime benchmark of design.md §6 in one table, each beside a baseline measured in the same run, with
its target and whether it is met.

    python benchmarks/run_all.py

Each ``bench_*.py`` also runs alone and prints its own rows. A row that fails prints ERROR (its traceback goes to
stderr) and the others still run.
"""

from __future__ import annotations

import time

import _common
import bench_commands
import bench_first_record
import bench_local
import bench_memory
import bench_process
import bench_startup

MODULES = [bench_local, bench_startup, bench_process, bench_memory, bench_first_record, bench_commands]


def main() -> None:
    started = time.perf_counter()
    _common.print_header()
    rows = _common.run_rows([m for module in MODULES for m in module.MEASURES])
    _common.print_table(rows)
    print(f"\n{len(rows)} rows in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
