"""Kubernetes API requests per attempt: 200 trivial tasks as pods against the Kubernetes emulator, which counts
every request its clients send.

    python benchmarks/bench_kubernetes.py

The target (design.md §6) is at most 3 requests per attempt (create, log, delete) plus the one shared watch per
namespace (its list and watch requests, counted apart). The baseline is what a backend that polls each pod once a
second would have sent in the same run: one GET per pod for every second it existed, plus its create and delete
(Metaflow's Kubernetes plugin polls, about 6 requests per poll loop).
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _common
import anyio
from _common import Row

TASKS = 200

TASK_FILE = textwrap.dedent(
    """
    import asyncio

    import flytelike as fl

    env = fl.TaskEnvironment(name="bench-k8s")


    @env.task
    async def one(i: int) -> int:
        return i


    @env.task
    async def many(n: int) -> int:
        return len(await asyncio.gather(*(one(i) for i in range(n))))
    """
)


async def _measure(file: Path) -> tuple[dict[str, int], float, int]:
    from flytelike._config import load_settings
    from flytelike._loader import load_file
    from flytelike._runtime import Runtime
    from flytelike.testing.kubernetes import KubernetesEmulator

    module = load_file(file)
    async with KubernetesEmulator() as cluster:
        settings = load_settings(
            kubernetes={
                "kubeconfig": str(cluster.kubeconfig_path),
                "entrypoint": [sys.executable, "-m", "flytelike.entry"],
            }
        )
        started = time.perf_counter()
        async with Runtime(settings=settings, platform="kubernetes") as runtime:
            handle = await runtime.start(module.many, TASKS)
            count = await handle.result()
            attempts = sum(a.attempts for a in handle.actions().values())
        seconds = time.perf_counter() - started
        if count != TASKS:
            raise RuntimeError(f"{count} of {TASKS} tasks returned")
        return dict(cluster.counters.clients), seconds, attempts


def api_requests() -> list[Row]:
    """Kubernetes API requests per attempt for 200 pods (emulator)."""
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-") as folder, _common.fresh_home():
        project = Path(folder)
        (project / "pyproject.toml").write_text("[project]\nname = 'bench-k8s'\n")
        file = project / "bench_k8s_tasks.py"
        file.write_text(TASK_FILE)
        counts, seconds, attempts = anyio.run(_measure, file)
    shared = sum(n for endpoint, n in counts.items() if endpoint.startswith(("watch", "list")))
    per_attempt = (sum(counts.values()) - shared) / attempts
    # A poller: create + delete per pod, and a GET per pod per second of the run (pods overlap, so this is low).
    poller = 2 + seconds
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return [
        Row(
            f"Kubernetes API requests per attempt, {TASKS} tasks",
            per_attempt,
            "requests",
            poller,
            "a 1 s per-pod poller in the same run",
            3,
            absolute=True,
            note=f"{attempts} attempts in {seconds:.1f}s; shared watch: {shared} requests; {detail}",
        )
    ]


MEASURES = [api_requests]

if __name__ == "__main__":
    _common.main_for(MEASURES)
