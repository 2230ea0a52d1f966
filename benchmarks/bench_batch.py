"""AWS Batch calls for 1,000 concurrently running jobs (design.md §6), counted by the Batch emulator.

    python benchmarks/bench_batch.py [--jobs 1000] [--seconds 150]

A root task on this machine fans out ``--jobs`` tasks to Batch. Each job sleeps ``--seconds`` and then writes its
``outputs.pb`` to the store, as ``flytelike-entry`` does last: a stand-in entrypoint (a shell script with curl)
keeps 1,000 jobs from being 1,000 Python processes on a small machine, while the backend does everything it does for
real jobs (definition look-up, ListJobs, SubmitJob, the shared DescribeJobs poll, reading the store). Calls are
counted on the emulator's side; the store's S3 calls are shown apart, since §6 budgets the Batch API.
``[batch] calls_per_second`` is raised to 50 so that 1,000 submissions take 20 s rather than 100 s; the poll keeps
its default bounds (1-15 s).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import _common
import anyio
from _common import Row

from flytelike._backends.batch import BatchBackend
from flytelike._config import load_settings
from flytelike._loader import load_file
from flytelike._proto.core.v1 import literals_pb2
from flytelike._runtime import Runtime
from flytelike.testing import BatchEmulator

TASKS = textwrap.dedent(
    """
    import asyncio

    import flytelike as fl

    env = fl.TaskEnvironment(name="bench-batch", resources=fl.Resources(cpu="1", memory="64Mi"))


    @env.task(platform=fl.Batch())
    async def job(i: int) -> int:
        return i


    @env.task
    async def fan_out(n: int) -> int:
        return len(await asyncio.gather(*(job(i) for i in range(n))))
    """
)

# What the stand-in entrypoint does with flytelike-entry's arguments: wait, then PUT the outputs under the
# attempt's --output-prefix (s3://bucket/key -> $AWS_ENDPOINT_URL/bucket/key: the emulator's S3 takes unsigned
# requests).
ENTRY = textwrap.dedent(
    """
    while [ $# -gt 0 ]; do
      case "$1" in --output-prefix) prefix="$2"; shift 2;; *) shift;; esac
    done
    sleep "$BENCH_SLEEP"
    exec curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$BENCH_OUTPUTS" \\
      "$AWS_ENDPOINT_URL/${prefix#s3://}/outputs.pb" -o /dev/null
    """
)
BATCH_OPERATIONS = (
    "DescribeJobQueues",
    "DescribeComputeEnvironments",
    "DescribeJobDefinitions",
    "RegisterJobDefinition",
    "ListJobs",
    "SubmitJob",
    "DescribeJobs",
    "TerminateJob",
    "GetLogEvents",
)


async def _measure(jobs: int, seconds: float, folder: Path) -> dict[str, Any]:
    outputs = folder / "outputs.pb"
    literal = literals_pb2.Literal(int_value=0)
    outputs.write_bytes(literals_pb2.LiteralMap(literals={"o0": literal}).SerializeToString(deterministic=True))
    entry = folder / "entry.sh"
    entry.write_text(ENTRY)
    project = folder / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'bench-batch'\n")
    (project / "bench_batch_tasks.py").write_text(TASKS)
    job_env = {"PATH": os.environ.get("PATH", os.defpath), "BENCH_SLEEP": str(seconds), "BENCH_OUTPUTS": str(outputs)}
    async with BatchEmulator(job_environment=job_env, max_vcpus=jobs + 16) as emulator:
        for key, value in emulator.environment().items():
            if key.startswith("AWS_"):
                os.environ[key] = value
        settings = load_settings(
            home=folder / "home",
            store={"url": f"s3://{emulator.bucket}/store", "endpoint_url": emulator.endpoint_url},
            batch={
                "queue": emulator.queue,
                "endpoint_url": emulator.endpoint_url,
                "region": emulator.region,
                "entrypoint": ["sh", str(entry)],
                "calls_per_second": 50,
            },
        )
        module = load_file(project / "bench_batch_tasks.py")
        running = 0
        started = time.perf_counter()
        async with Runtime(settings=settings) as rt:
            backend = await rt.backend("batch")
            assert isinstance(backend, BatchBackend)
            handle = await rt.start(module.fan_out, jobs)

            async def sample() -> None:
                nonlocal running
                while True:
                    running = max(running, sum(1 for s in backend.poller.statuses() if s == "RUNNING"))
                    await anyio.sleep(0.5)

            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                done = await handle.result()
                tg.cancel_scope.cancel()
            polls, largest = backend.poller.polls, backend.poller.largest_poll
        counts = emulator.counters.snapshot()
    return {
        "done": done,
        "running": running,
        "polls": polls,
        "largest_poll": largest,
        "counts": counts,
        "wall": time.perf_counter() - started,
    }


def batch_calls(jobs: int = 1000, seconds: float = 150.0) -> list[Row]:
    """Calls for ``jobs`` concurrently running jobs, against design.md §6's budget."""
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-batch-") as folder:
        found = anyio.run(_measure, jobs, seconds, Path(folder))
    if found["done"] != jobs:
        raise RuntimeError(f"{found['done']} of {jobs} jobs returned")
    counts: dict[str, int] = found["counts"]
    batch = sum(counts.get(op, 0) for op in BATCH_OPERATIONS)
    describe = counts.get("DescribeJobs", 0)
    store = sum(v for k, v in counts.items() if k not in BATCH_OPERATIONS)
    polls = found["polls"]
    metaflow = jobs * found["wall"]  # one DescribeJobs per job per second, over the same run
    note = f"{found['running']} running at once at most; {polls} polls in {found['wall']:.0f} s"
    return [
        Row(
            f"DescribeJobs calls in the largest poll, {jobs} jobs",
            found["largest_poll"],
            "calls",
            target=math.ceil(jobs / 100),
            absolute=True,
            note=note,
        ),
        Row(
            f"Batch calls per job besides polls, {jobs} jobs",
            (batch - describe) / jobs,
            "calls/job",
            target=1.2,
            absolute=True,
            note=", ".join(f"{op} {counts[op]}" for op in BATCH_OPERATIONS if counts.get(op) and op != "DescribeJobs"),
        ),
        Row(
            f"DescribeJobs calls over the run, {jobs} jobs",
            describe,
            "calls",
            metaflow,
            "one per job per second (Metaflow)",
            note=f"{describe / max(polls, 1):.1f} per poll; the store's S3 requests apart: {store}",
        ),
    ]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs running at once (default 1000)")
    parser.add_argument("--seconds", type=float, default=150.0, help="how long each job runs (default 150)")
    return parser.parse_args()


MEASURES = [batch_calls]

if __name__ == "__main__":
    args = _arguments()

    def measure() -> list[Row]:
        """Batch calls for concurrently running jobs."""
        return batch_calls(args.jobs, args.seconds)

    _common.main_for([measure])
