"""Metaflow's HybridCloudFlow in flytelike: one run across this machine, a Kubernetes cluster and AWS Batch.

1. `start` runs here and reads local files, one shard per country;
2. `prepare_data` runs on an on-prem Kubernetes cluster (16000 MiB);
3. `train` trains one model per country on AWS Batch GPUs, in parallel;
4. `join` picks the best model on a high-memory AWS Batch instance;
5. the result comes back here.

Metaflow's `foreach` / join becomes `asyncio.gather` over the countries and an ordinary function call. Run without
`--with`: the pinned tasks go to their platforms, the rest stay here (a run starts when every task it can reach has
a backend):

    flytelike run examples/seeds/hybrid_cloud.py hybrid_cloud_flow --data-dir data/

Running this file prints where each task runs and with what.
"""

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import flytelike as fl

env = fl.TaskEnvironment(name="hybrid-cloud")


@dataclass
class Model:
    country: str
    score: int


@env.task(platform=fl.Kubernetes(memory=16000))
async def prepare_data(country: str, shard: str) -> str:
    print("processing a shard of data", shard)
    return shard


@env.task(platform=fl.Batch(gpu=2, queue="gpu-queue"))
async def train(country: str, data: str) -> Model:
    print("training model...")
    return Model(country=country, score=random.randint(0, 10))


@env.task(platform=fl.Batch(memory=16000, queue="cpu-queue"))
async def join(models: list[Model]) -> str:
    return max(models, key=lambda m: m.score).country


async def one_country(country: str, shard: str) -> Model:
    return await train(country, await prepare_data(country, shard))


@env.task
async def hybrid_cloud_flow(data_dir: str = ".", countries: list[str] = ["US", "BR", "IT"]) -> str:  # noqa: B006
    shards = {c: Path(data_dir, f"{c}.data").read_text() for c in countries}  # local files, read here
    models = await asyncio.gather(*(one_country(c, shards[c]) for c in countries))
    best = await join(list(models))
    print(best, "produced best results")
    return best


if __name__ == "__main__":
    for task in (hybrid_cloud_flow, prepare_data, train, join):
        r = task.resolved()
        print(f"{task.full_name:<32} {r.platform or 'this machine'!s:<40} {r.resources}")
