"""Metaflow's sizing advice ("Rule of Thumb", "Monitor Usage", cost, troubleshooting), in flytelike.

    python examples/seeds/rules_of_thumb.py
    flytelike run examples/seeds/rules_of_thumb.py monitor_usage     # then: flytelike runs show RUN

`monitor_usage` runs in its own process (fl.Local(process=True)), so `flytelike runs show` reports its peak memory
and cpu time next to what it requested: what Metaflow's example measures by hand with psutil.
"""

import hashlib
import os
import resource
from collections.abc import Iterator
from multiprocessing.pool import ThreadPool

import flytelike as fl

# "Rule of Thumb"
LIGHT_DATA_PROCESSING = fl.Resources(cpu=2, memory="8000Mi")
MEDIUM_ML_TRAINING = fl.Resources(cpu=4, memory="16000Mi")
LARGE_DATASET_PROCESSING = fl.Resources(cpu=8, memory="32000Mi")
DEEP_LEARNING_WITH_GPU = fl.Resources(cpu=8, memory="32000Mi", gpu=1)
MULTI_GPU_TRAINING = fl.Resources(cpu=16, memory="64000Mi", gpu=4)

# Cost: fast but expensive, or slower but cheaper.
FAST_BUT_EXPENSIVE = fl.Resources(cpu=32, memory="128000Mi")
SLOWER_BUT_CHEAPER = fl.Resources(cpu=4, memory="16000Mi")

# GPUs need enough CPU memory to load data.
TOO_LITTLE_FOR_A_GPU = fl.Resources(gpu=1, memory="4096Mi")
ENOUGH_FOR_A_GPU = fl.Resources(gpu=1, memory="32000Mi")

env = fl.TaskEnvironment(name="rules-of-thumb")


# "Monitor Usage": the task logs its own peak memory; flytelike records it too (process-isolated tasks).
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi"), platform=fl.Local(process=True))
def monitor_usage() -> str:
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Memory usage: {peak_mib:.2f} MB")
    return "done"


# Troubleshooting "OOM": process the data in chunks instead of loading it all.
def load_data_chunks() -> Iterator[bytes]:
    for _ in range(4):
        yield os.urandom(1 << 20)  # 1 MiB at a time


@env.task(resources=fl.Resources(memory="8000Mi"))
def process_in_chunks() -> int:
    return sum(len(chunk) for chunk in load_data_chunks())


# Troubleshooting "runs slowly": more cpu, used in parallel.
def expensive_func(x: bytes) -> str:
    return hashlib.sha256(x).hexdigest()


@env.task(resources=fl.Resources(cpu=1))
def process_slow(n: int = 8) -> int:
    return len([expensive_func(os.urandom(1 << 16)) for _ in range(n)])


@env.task(resources=fl.Resources(cpu=8))
def process_fast(n: int = 8) -> int:
    with ThreadPool(8) as pool:
        return len(pool.map(expensive_func, [os.urandom(1 << 16) for _ in range(n)]))


# Troubleshooting "CUDA not available": the GPUs a task can see (the original checks torch.cuda).
@env.task(resources=fl.Resources(gpu=1, memory="16000Mi"))
def check_gpu() -> str:
    return f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(not set)')}"


# Troubleshooting "No space left on device": 10000 MB of disk is too little for a 50 GB file; ask for 100000.
@env.task(resources=fl.Resources(disk="10000Mi"))
async def process_small_disk() -> str:
    return "runs out of disk"


@env.task(resources=fl.Resources(disk="100000Mi"))
async def process_big_disk() -> str:
    return "fits"


@env.task
async def all_checks() -> list[str]:
    return [
        await monitor_usage.aio(),
        str(await process_in_chunks.aio()),
        str(await process_slow.aio()),
        str(await process_fast.aio()),
        await check_gpu.aio(),
        await process_big_disk(),
    ]


if __name__ == "__main__":
    for name in ("LIGHT_DATA_PROCESSING", "DEEP_LEARNING_WITH_GPU", "MULTI_GPU_TRAINING", "FAST_BUT_EXPENSIVE"):
        print(f"{name:<26} {globals()[name]}")
    print(fl.Runner(local_resources="ignore").run(all_checks).outputs)
