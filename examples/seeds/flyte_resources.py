"""Every example of Flyte 2's "Resources" page in flytelike: `flyte.X` is `fl.X`, with the same arguments.

Running this file prints a few of them and runs the tasks here (the GPUs and memory are meant for a cluster):

    python examples/seeds/flyte_resources.py
    flytelike show examples/seeds/flyte_resources.py train_model -o yaml
"""

import flytelike as fl

# Overview: basic resource allocation.
resources = fl.Resources(
    cpu="2",  # 2 CPU cores
    memory="4Gi",  # 4 GiB of memory
    gpu="A100:1",  # 1 NVIDIA A100 GPU
    disk="10Gi",  # 10 GiB of ephemeral storage
)
env = fl.TaskEnvironment(name="ml-training", resources=resources)

# CPU: string formats (Kubernetes-style), numbers, and request/limit ranges.
CPU_EXAMPLES = [
    fl.Resources(cpu="500m"),  # 500 milliCPU (0.5 cores)
    fl.Resources(cpu="2"),  # 2 CPU cores
    fl.Resources(cpu="1.5"),  # 1.5 CPU cores
    fl.Resources(cpu=1),  # 1 CPU core
    fl.Resources(cpu=0.5),  # 0.5 CPU cores
    fl.Resources(cpu=("1", "2")),  # request 1 core, limit 2
    fl.Resources(cpu=(1, 4)),  # request 1 core, limit 4
]

# Memory: binary and decimal units, and a range.
MEMORY_EXAMPLES = [
    fl.Resources(memory="512Mi"),  # 512 MiB
    fl.Resources(memory="1Gi"),  # 1 GiB
    fl.Resources(memory="2Gi"),  # 2 GiB
    fl.Resources(memory="500M"),  # 500 MB (decimal)
    fl.Resources(memory="1G"),  # 1 GB (decimal)
    fl.Resources(memory=("1Gi", "4Gi")),  # request 1 GiB, limit 4 GiB
]

# GPU: counts of any type, and specific types with quantities.
GPU_EXAMPLES = [
    fl.Resources(gpu=1),  # 1 GPU (any available type)
    fl.Resources(gpu=4),  # 4 GPUs
    fl.Resources(gpu="T4:1"),  # 1 NVIDIA T4
    fl.Resources(gpu="A100:2"),  # 2 NVIDIA A100s
    fl.Resources(gpu="H100:8"),  # 8 NVIDIA H100s
]

# Advanced GPU configuration.
gpu_config = fl.GPU(device="A100", quantity=2)
with_gpu_config = fl.Resources(gpu=gpu_config)
partitioned_gpu = fl.GPU(device="A100", quantity=1, partition="1g.5gb")  # 1/7th of an A100 with 5 GB
with_partitioned_gpu = fl.Resources(gpu=partitioned_gpu)
large_partition = fl.GPU(device="A100 80G", quantity=1, partition="7g.80gb")  # a whole A100 80GB

# TPUs use the gpu parameter too.
tpu_config = fl.TPU(device="V5P", partition="2x2x1")
with_tpu = fl.Resources(gpu=tpu_config)
tpu_v6e = fl.TPU(device="V6E", partition="4x4")
with_tpu_v6e = fl.Resources(gpu=tpu_v6e)

# Storage: disk and shared memory.
STORAGE_EXAMPLES = [
    fl.Resources(disk="10Gi"),  # 10 GiB ephemeral storage
    fl.Resources(disk="100Gi"),  # 100 GiB ephemeral storage
    fl.Resources(shm="1Gi"),  # 1 GiB shared memory (/dev/shm)
    fl.Resources(shm="auto"),  # shared memory sized by the platform
]

# Development vs production.
dev_resources = fl.Resources(cpu="500m", memory="1Gi")
prod_resources = fl.Resources(cpu=("2", "4"), memory=("4Gi", "8Gi"), disk="50Gi")

# Machine learning workloads.
training_resources = fl.Resources(cpu="8", memory="32Gi", gpu="A100:4", disk="100Gi", shm="16Gi")
inference_resources = fl.Resources(cpu="2", memory="4Gi", gpu="T4:1", disk="20Gi")
efficient_inference = fl.Resources(
    cpu="4", memory="16Gi", gpu=fl.GPU(device="A100", quantity=1, partition="3g.20gb"), disk="50Gi"
)

# Data processing workloads.
data_processing_resources = fl.Resources(cpu="4", memory="16Gi", disk="200Gi")
spark_resources = fl.Resources(cpu=("2", "8"), memory=("8Gi", "32Gi"), disk="100Gi")

# Environment-level resources: every task of ml_env gets them.
ml_env = fl.TaskEnvironment(name="ml-training-env", resources=fl.Resources(cpu="4", memory="8Gi", gpu="A100:1"))


@ml_env.task
async def train_model(data: str) -> str:
    return "model_trained"


# Task-specific override. Flyte also has a module-level `@task`; in flytelike every task belongs to an environment,
# and the task's resources are merged over the environment's field by field.
@ml_env.task(resources=fl.Resources(cpu="8", memory="16Gi", gpu="H100:2"))
async def heavy_training_task() -> str:
    return "heavy_model_trained"


# Custom device specifications: outside the catalog, not checked.
custom_device = fl.Device(device="custom_accelerator", quantity=2, partition="large")
with_custom_device = fl.Resources(gpu=custom_device)

# Resource validation: errors are ValueErrors.
VALIDATION_MESSAGES = []
try:
    invalid_resources = fl.Resources(cpu=-1)  # cpu must be >= 0
except ValueError as e:
    VALIDATION_MESSAGES.append(f"Invalid resource: {e}")
try:
    invalid_gpu = fl.Resources(gpu="InvalidGPU:1")
except ValueError as e:
    VALIDATION_MESSAGES.append(f"Invalid GPU: {e}")

# Best practices: right-sizing, ranges, GPU types and partitions, memory and storage.
light_task_resources = fl.Resources(cpu="500m", memory="1Gi")
wasteful_resources = fl.Resources(cpu="16", memory="64Gi")
flexible_resources = fl.Resources(cpu=("1", "4"), memory=("2Gi", "8Gi"))
inference_gpu = fl.Resources(gpu="T4:1")
training_gpu = fl.Resources(gpu="A100:4")
partitioned_gpu_resources = fl.Resources(gpu=fl.GPU(device="A100", quantity=1, partition="1g.5gb"))
data_heavy_resources = fl.Resources(cpu="4", memory="8Gi", shm="2Gi", disk="50Gi")

# Monitoring and optimization.
initial_resources = fl.Resources(cpu="1", memory="2Gi")
optimized_resources = fl.Resources(cpu=("2", "4"), memory="4Gi")
spot_resources = fl.Resources(cpu=("2", "8"), memory=("4Gi", "16Gi"))
cost_efficient_gpu = fl.Resources(gpu=fl.GPU(device="A100", quantity=1, partition="2g.10gb"))

# Integration with other features: reusable containers and caching.
reusable_env = fl.TaskEnvironment(
    name="reusable-ml",
    resources=fl.Resources(cpu="2", memory="4Gi", gpu="T4:1"),
    reusable=fl.ReusePolicy(replicas=2, concurrency=3, idle_ttl=300),
)
cached_env = fl.TaskEnvironment(
    name="cached-processing",
    resources=fl.Resources(cpu="4", memory="8Gi"),
    cache=fl.Cache(ttl="1h"),
)


@reusable_env.task
async def serve(prompt: str) -> str:
    return prompt[::-1]


@cached_env.task
async def featurize(rows: int) -> int:
    return rows * 2


@cached_env.task
async def pipeline(rows: int = 3) -> list[str]:
    return [
        await train_model("s3://bucket/data"),
        await heavy_training_task(),
        await serve("abc"),
        str(await featurize(rows)),
    ]


if __name__ == "__main__":
    print(heavy_training_task.resolved().resources)
    print(efficient_inference)
    for message in VALIDATION_MESSAGES:
        print(message.split(";")[0])
    # The GPUs and memory are for a cluster; run the tasks here anyway (GPU code would run without GPUs).
    print(fl.Runner(local_resources="ignore").run(pipeline).outputs)
