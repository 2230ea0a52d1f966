"""The BigSum example: a task that needs 60000Mi of memory.

On a machine with less memory the run fails at once, before anything starts, and says where it fits:

    flytelike run examples/bigsum.py start
    flytelike run --with kubernetes examples/bigsum.py start     # a node with enough memory
    flytelike run --with batch examples/bigsum.py start
"""

import time

import flytelike as fl

env = fl.TaskEnvironment(name="bigsum")


@env.task(resources=fl.Resources(memory="60000Mi", cpu=1))
async def big_sum(size: int = 80_000) -> float:
    """Sums a size x size matrix of 8-byte values (80000^2 * 8 bytes = 48 GiB)."""
    row = bytearray(size * 8)
    started = time.time()
    total = 0
    for _ in range(size):
        total += sum(row)
    print(f"Computing it took {(time.time() - started) * 1000:.0f}ms.")
    return float(total)


@env.task
async def start() -> str:
    total = await big_sum()
    return f"The sum is {total:f}."


if __name__ == "__main__":
    print(fl.run(start).outputs)
