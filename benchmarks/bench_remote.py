"""The out-of-process path: 200 trivial tasks each run as ``flytelike-entry`` in a new process
(``flytelike.testing.SubprocessBackend``: bundle, store, entrypoint, controller), beside the same 200 tasks on the
warm workers of ``fl.Local(process=True)``.

    python benchmarks/bench_remote.py

The root task (itself an out-of-process attempt) gathers 200 children and times them from inside; a first run in
the same home uploads and extracts the bundle, so the timed runs find it cached, as a second run on a machine does.
The row is information only (no target in design.md §6): each attempt is a new Python process, where a pod or a
Batch job costs seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import _common
import bench_process
from _common import Row

TASKS = 200
REPEAT = 2

TASK_FILE = textwrap.dedent(
    """
    import asyncio
    import json
    import sys
    import time

    import anyio

    import flytelike as fl

    env = fl.TaskEnvironment(name="bench-remote")


    @env.task
    async def noop(i: int) -> int:
        return i


    @env.task
    async def main(n: int) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(noop(i) for i in range(n)))
        return time.perf_counter() - started


    if __name__ == "__main__":
        from flytelike._runtime import Runtime
        from flytelike.testing import SubprocessBackend

        async def run() -> None:
            async with Runtime(backends={"local": SubprocessBackend.from_input}) as runtime:
                handle = await runtime.start(main, int(sys.argv[1]))
                print(json.dumps({"calls": await handle.result()}))

        anyio.run(run)
    """
)


def _once(file: Path, home: Path, n: int) -> float:
    done = subprocess.run(
        [sys.executable, str(file), str(n)],
        env=_common.process_env(home),
        cwd=file.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"task file exited {done.returncode}: {' '.join(done.stderr.strip().splitlines()[-3:])}")
    calls: float = json.loads(done.stdout.strip().splitlines()[-1])["calls"]
    return calls


def out_of_process() -> list[Row]:
    """200 trivial tasks, each a new entrypoint process, vs 200 on warm workers."""
    ours = warm = float("inf")
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-") as folder, _common.fresh_home() as home:
        project = Path(folder)
        (project / "pyproject.toml").write_text("[project]\nname = 'bench-remote'\n")
        file = project / "bench_remote_tasks.py"
        file.write_text(TASK_FILE)
        _once(file, home, 2)  # the bundle uploaded and extracted once
        isolated = project / "isolated" / "bench_isolated.py"
        isolated.parent.mkdir()
        isolated.write_text(bench_process.TASK_FILE)
        for _ in range(REPEAT):
            ours = min(ours, _once(file, home, TASKS))
            warm = min(warm, bench_process._flytelike_once(isolated, home)["calls"])
    return [
        Row(
            f"{TASKS} out-of-process tasks (new process each)",
            ours / TASKS * 1000,
            "ms/task",
            warm / TASKS * 1000,
            f"{TASKS} on {bench_process.WORKERS} warm workers",
            note=f"bundle cached; timed inside the root task; best of {REPEAT}",
        )
    ]


MEASURES = [out_of_process]

if __name__ == "__main__":
    _common.main_for(MEASURES)
