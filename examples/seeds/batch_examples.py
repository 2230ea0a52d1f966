"""Metaflow's `@batch` examples in flytelike: tasks pinned to AWS Batch with `platform=fl.Batch(...)`.

Integer `memory`, `shared_memory`, `max_swap` and `tmpfs_size` count MiB, as in `@batch` and AWS Batch itself.
`--with batch:...` does what Metaflow's runtime override does:

    flytelike run --with batch:cpu=8,memory=32768,gpu=1 examples/seeds/batch_examples.py decide

Running this file prints what each task would run with.
"""

import flytelike as fl

env = fl.TaskEnvironment(name="batch-examples")


# Basic usage / basic Batch execution: @batch(cpu=4, memory=16384).
@env.task(platform=fl.Batch(cpu=4, memory=16384))
async def process_data() -> str:
    return "processed on AWS Batch"


# GPU-accelerated training: @batch(cpu=8, memory=32768, gpu=2).
@env.task(platform=fl.Batch(cpu=8, memory=32768, gpu=2))
async def train_model() -> str:
    return "trained on 2 GPUs"


# Custom Docker image: @batch(image=..., cpu=4, memory=16384). The image is a task (or environment) setting.
@env.task(image="my-registry.com/ml-image:latest", platform=fl.Batch(cpu=4, memory=16384))
async def custom_environment() -> str:
    return "custom image"


# AWS Inferentia: @batch(cpu=4, memory=16384, inferentia=1).
@env.task(platform=fl.Batch(cpu=4, memory=16384, inferentia=1))
async def inference() -> str:
    return "inferred"


# Shared memory: @batch(cpu=8, memory=32768, shared_memory=16384).
@env.task(platform=fl.Batch(cpu=8, memory=32768, shared_memory=16384))
async def multiprocess_task() -> str:
    return "shared"


# AWS tags: @batch(..., aws_batch_tags={...}) is `tags=` here.
@env.task(platform=fl.Batch(cpu=4, memory=8192, tags={"Project": "DataPipeline", "Environment": "Production"}))
async def tagged_job() -> str:
    return "tagged"


# Batch with error handling: @retry(times=3) @timeout(hours=2) @batch(cpu=4, memory=16384).
@env.task(retries=3, timeout="2h", platform=fl.Batch(cpu=4, memory=16384))
async def robust_processing() -> str:
    return "robust"


# Conditional Batch execution: an ordinary `if` in the parent chooses where the work runs.
@env.task(platform=fl.Batch(cpu=8, memory=32768))
async def batch_process() -> str:
    return "heavy processing on AWS Batch"


@env.task
async def local_process() -> str:
    return "light processing here"


@env.task
async def join(result: str) -> str:
    return result


@env.task
async def decide(large_dataset: bool = False) -> str:
    result = await (batch_process() if large_dataset else local_process())
    return await join(result)


if __name__ == "__main__":
    for task in env.tasks.values():
        r = task.resolved()
        where = repr(r.platform) if r.platform is not None else "this machine"
        print(f"{task.name:<20} {where}  {r.resources}  retries={r.retries.count}")
