"""Resources chosen when the run starts, and memory that grows after an out-of-memory failure, in flytelike.

Metaflow's "Parameterized Resources" writes `@resources(cpu=self.num_cpus, ...)`, which cannot work: decorators
are evaluated when the class is defined, before any parameter has a value. In flytelike the flow's inputs decide
the resources of the tasks it starts, with `task.override(resources=...)`:

    flytelike run --local-resources ignore examples/seeds/configurable.py configurable_flow --cpus 8 --memory 32

"Progressive Resource Scaling" (4 GB, then 8 GB, then 16 GB on retries) is a retry policy here, and
"Environment-Specific Resources" works as written, since Resources are evaluated when the module is imported:

    ENV=prod flytelike show examples/seeds/configurable.py env_train -o yaml
"""

import os

import flytelike as fl

env = fl.TaskEnvironment(name="configurable")


@env.task
async def train(num_cpus: int, memory_gb: int) -> str:
    return f"Using {num_cpus} CPUs and {memory_gb}GB RAM"


@env.task
async def configurable_flow(cpus: int = 4, memory: int = 16) -> str:
    """ConfigurableFlow: the run's inputs size the `train` step."""
    sized = train.override(resources=fl.Resources(cpu=cpus, memory=f"{memory * 1000}Mi"))
    return await sized(cpus, memory)


# ScalingFlow: start with 4096 MiB; after each out-of-memory failure retry with twice as much, up to 16384 MiB.
# (Memory is enforced, and out-of-memory detected, for fl.Local(process=True) tasks and on remote platforms.)
@env.task(
    resources=fl.Resources(memory="4096Mi"),
    retries=fl.RetryPolicy(2, oom_memory_multiplier=2, oom_memory_limit="16384Mi"),
)
async def scaling_start() -> str:
    return "processed"


# "Start conservative": cpu=1, memory=4096, raised to 8192 after an OOM, by hand ...
@env.task(resources=fl.Resources(cpu=1, memory="4096Mi"))
async def conservative() -> str:
    return "processed"


conservative_bigger = conservative.override(resources=fl.Resources(memory="8192Mi"))


# EnvFlow: production gets 16 cpu and 64000 MiB, development 4 cpu and 16000 MiB.
@env.task(
    resources=fl.Resources(
        cpu=16 if os.getenv("ENV") == "prod" else 4,
        memory="64000Mi" if os.getenv("ENV") == "prod" else "16000Mi",
    )
)
async def env_train() -> str:
    return "trained"


if __name__ == "__main__":
    runner = fl.Runner(local_resources="ignore")  # the sizes are for a cluster; run them here anyway
    print(runner.run(configurable_flow, cpus=8, memory=32).outputs)
    print(runner.run(scaling_start).outputs)
    print(conservative_bigger.resolved().resources)
    print(env_train.resolved().resources)
