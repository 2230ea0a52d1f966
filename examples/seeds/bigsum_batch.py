"""Metaflow's BigSum with `@batch(memory=60000, cpu=1)` instead of `@resources`, in flytelike.

A platform pins the task: `start` always runs on AWS Batch, while `end` (no platform) runs wherever the run runs,
here on this machine. Run without `--with` (a run starts when every task it can reach has a backend):

    flytelike run examples/seeds/bigsum_batch.py bigsum

Running this file prints where each task runs and with what.
"""

import time

import flytelike as fl

env = fl.TaskEnvironment(name="bigsum-batch")


@env.task(platform=fl.Batch(memory=60000, cpu=1))
def start() -> tuple[float, float]:
    import numpy  # type: ignore[import-not-found,unused-ignore]

    big_matrix = numpy.random.ranf((80000, 80000))
    t = time.time()
    total = float(numpy.sum(big_matrix))
    return total, time.time() - t


@env.task
async def end(total: float, took: float) -> str:
    return f"The sum is {total:f}.\nComputing it took {took * 1000:.0f}ms."


@env.task
async def bigsum() -> str:
    total, took = await start.aio()
    return await end(total, took)


if __name__ == "__main__":
    for task in (start, end, bigsum):
        r = task.resolved()
        print(f"{task.full_name:<20} {r.platform or 'this machine'!s:<30} {r.resources}")
