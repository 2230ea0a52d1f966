"""Metaflow's `@resources` examples (its "@resources decorator" page) in flytelike.

Each Metaflow step becomes a task; `@resources(cpu=..., memory=MB, gpu=..., disk=MB, shared_memory=MiB)` becomes
`fl.Resources(cpu=..., memory="<n>Mi", gpu=..., disk="<n>Mi", shm="<n>Mi")`. The tasks have no platform, so the
same file runs here or on a cluster:

    python examples/seeds/resource_flow.py                                  # here, resources not enforced
    flytelike run --local-resources ignore examples/seeds/resource_flow.py resource_flow
    flytelike run --with kubernetes examples/seeds/resource_flow.py resource_flow
    flytelike run --with batch examples/seeds/resource_flow.py resource_flow
"""

import hashlib
import os
import tempfile
from multiprocessing import shared_memory
from multiprocessing.pool import ThreadPool
from pathlib import Path

import flytelike as fl

env = fl.TaskEnvironment(name="resource-flow")


# ResourceFlow: @resources(cpu=4, memory=16000, gpu=1) on `train`, then `end`.
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi", gpu=1))
async def train() -> str:
    """This step needs 4 CPUs, 16000 MiB of RAM and 1 GPU."""
    return "model"


@env.task
async def end(model: str) -> str:
    return f"trained {model}"


@env.task
async def resource_flow() -> str:
    """start -> train -> end, as one parent task awaiting its steps."""
    return await end(await train())


# "Platform independence": the same spec runs on Batch or Kubernetes with --with.
@env.task(resources=fl.Resources(cpu=8, memory="32000Mi", gpu=2))
async def train_anywhere() -> str:
    return "trained"


# "Parameters": every @resources parameter at once.
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi", gpu=1, disk="50000Mi", shm="1024Mi"))
async def compute() -> str:
    return "computed"


# "CPU"
@env.task(resources=fl.Resources(cpu=1))
async def light_task() -> int:
    return sum(range(1000))


def expensive_func(chunk: bytes) -> str:
    return hashlib.sha256(chunk).hexdigest()  # releases the GIL for large inputs, so threads run in parallel


@env.task(resources=fl.Resources(cpu=8))
def parallel_task(chunks: int = 16) -> int:
    data = [os.urandom(1 << 16) for _ in range(chunks)]
    with ThreadPool(8) as pool:
        results = pool.map(expensive_func, data)
    return len(set(results))


# "Memory": 4096 MB and 32000 MB.
@env.task(resources=fl.Resources(memory="4096Mi"))
async def small_data() -> str:
    return "small"


@env.task(resources=fl.Resources(memory="32000Mi"))
def large_data(path: str = "") -> int:
    """Reads a large CSV (the original uses pandas.read_csv)."""
    if not path:
        return 0
    with open(path) as f:
        return sum(1 for _ in f)


# "GPU": the original moves a torch model to CUDA; here the GPUs visible to the task are reported.
@env.task(resources=fl.Resources(gpu=1, memory="32000Mi"))
def train_gpu() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "(not set)")


@env.task(resources=fl.Resources(gpu=4, memory="64000Mi"))
def multi_gpu() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "(not set)")


# "Disk": 100000 MB of ephemeral storage for intermediate files.
@env.task(resources=fl.Resources(disk="100000Mi"))
def process_data() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "intermediate.bin"
        path.write_bytes(b"\0" * 1024)
        return path.stat().st_size


# "Shared memory": an 8192 MiB /dev/shm for inter-process communication.
@env.task(resources=fl.Resources(shm="8192Mi"))
def ipc_task() -> int:
    shm = shared_memory.SharedMemory(create=True, size=1_000_000)
    try:
        return shm.size
    finally:
        shm.close()
        shm.unlink()


@env.task
async def all_steps() -> list[str]:
    return [
        await resource_flow(),
        await train_anywhere(),
        await compute(),
        str(await light_task()),
        str(await parallel_task.aio()),
        await small_data(),
        str(await large_data.aio()),
        await train_gpu.aio(),
        await multi_gpu.aio(),
        str(await process_data.aio()),
        str(await ipc_task.aio()),
    ]


if __name__ == "__main__":
    # Metaflow's @resources has no effect on local runs; `ignore` does the same here (by default a task whose memory
    # can never fit this machine stops the run before it starts).
    print(fl.Runner(local_resources="ignore").run(all_steps).outputs)
