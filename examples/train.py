"""The training example: resources declared once, run anywhere.

flytelike run examples/train.py main --n 3
flytelike run --with kubernetes examples/train.py main --n 3
flytelike run --with batch:cpu=8,memory=32768,queue=gpu examples/train.py main
"""

import asyncio
import random

import flytelike as fl

env = fl.TaskEnvironment(
    name="training",
    image="ghcr.io/acme/train:1.4",
    resources=fl.Resources(cpu=("1", "2"), memory="4Gi", gpu="A100:1", disk="10Gi", shm="auto"),
    env_vars={"HF_HOME": "/cache"},
    secrets=[fl.Secret("hf-token")],
    cache=fl.Cache(ttl="1h"),
    reusable=fl.ReusePolicy(replicas=2, concurrency=3, idle_ttl=300),
)


@env.task(retries=3, timeout="2h")
async def train(shard: str, lr: float = 1e-3) -> float:
    """Trains on one shard and returns its score."""
    rng = random.Random(f"{shard}:{lr}")
    await asyncio.sleep(0.01)
    return round(rng.random(), 4)


@env.task(resources=fl.Resources(cpu="8", memory="16Gi", gpu=fl.GPU("H100", 2)))
async def heavy() -> str:
    return "done"


@env.task
async def main(n: int = 3) -> float:
    scores = await asyncio.gather(*(train(f"s{i}") for i in range(n)))
    return max(scores)


if __name__ == "__main__":
    print(fl.run(main, n=3).outputs)
