"""Metaflow's BigSum (its "Requesting Compute Resources" guide) in flytelike.

`start` sums an 80000 x 80000 random matrix: 80000^2 * 8 bytes = 48 GB, so it asks for 60000 MiB. On a machine
with less memory the run stops at once, before anything is allocated, and says where it fits; there is no
MemoryError halfway through:

    $ flytelike run examples/seeds/bigsum_resources.py bigsum
    Error: task bigsum.start requests 58.6 GiB of memory but this machine has 15.5 GiB; it can never fit. Run it
    where it fits with `--with kubernetes` or `--with batch`, ...

    flytelike run --with kubernetes examples/seeds/bigsum_resources.py bigsum
    flytelike run --with batch examples/seeds/bigsum_resources.py bigsum

The task needs numpy in its image (as the original does).
"""

import time

import flytelike as fl

env = fl.TaskEnvironment(name="bigsum")


@env.task(resources=fl.Resources(memory="60000Mi", cpu=1))
def start() -> tuple[float, float]:
    import numpy  # type: ignore[import-not-found,unused-ignore]  # imported where it runs, as in the original

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
    print(fl.run(bigsum).outputs)
