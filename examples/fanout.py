"""A wide fan-out and a long chain of small tasks, each one a recorded action.

flytelike run examples/fanout.py main --n 1000
flytelike run examples/fanout.py chain --n 100
"""

import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="fanout")


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def main(n: int = 1000) -> int:
    """Sum of squares of 0..n-1, one task per number."""
    return sum(await asyncio.gather(*(square(i) for i in range(n))))


@env.task
async def chain(n: int = 100) -> int:
    """n tasks, each awaited before the next starts."""
    total = 0
    for i in range(n):
        total += await square(i)
    return total


if __name__ == "__main__":
    print(fl.run(main, n=1000).outputs)
