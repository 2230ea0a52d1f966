"""Hello, flytelike: two tasks, a fan-out, run on this machine.

flytelike run examples/hello.py main --name you --times 3
"""

import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="hello", resources=fl.Resources(cpu="100m", memory="64Mi"))


@env.task
async def greet(name: str) -> str:
    """Say hello to one person."""
    return f"Hello, {name}!"


@env.task
async def main(name: str = "world", times: int = 3) -> list[str]:
    """Greet `name` several times, concurrently."""
    return list(await asyncio.gather(*(greet(f"{name} #{i}") for i in range(times))))


if __name__ == "__main__":
    print(fl.run(main, name="you").outputs)
