"""Metaflow's `@resources` combined with `@batch` and `@kubernetes`, in flytelike.

`@batch` / `@kubernetes` on a step become `platform=fl.Batch(...)` / `platform=fl.Kubernetes(...)` on a task: the
task always runs there. Platform values combine with `fl.Resources` by taking the larger of each.

These tasks are pinned to AWS Batch or Kubernetes, so running this file prints what each task would run with:

    python examples/seeds/platform_flows.py
    flytelike show examples/seeds/platform_flows.py k8s_process -o yaml
"""

from typing import Any

import flytelike as fl

env = fl.TaskEnvironment(name="platform-flows")


# "Separation of concerns": what you need (Resources) apart from where to run (the platform).
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi"), platform=fl.Batch())
async def process() -> str:
    return "processed"


# BatchResourceFlow: @batch + @resources(cpu=8, memory=32000, gpu=1).
@env.task(resources=fl.Resources(cpu=8, memory="32000Mi", gpu=1), platform=fl.Batch())
async def batch_train() -> str:
    return "trained on AWS Batch"


# K8sResourceFlow: @kubernetes + @resources(cpu=4, memory=16000, disk=50000).
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi", disk="50000Mi"), platform=fl.Kubernetes())
async def k8s_process() -> str:
    return "processed on Kubernetes"


# "Override behavior": @batch(cpu=4, memory=8000) with @resources(cpu=2, memory=16000) gets 4 cpu and 16000 MiB.
@env.task(resources=fl.Resources(cpu=2, memory="16000Mi"), platform=fl.Batch(cpu=4, memory=8000))
async def override_train() -> str:
    return "trained"


# "AWS Batch" mapping: a job with >= 4 vCPUs and >= 16000 MiB.
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi"), platform=fl.Batch())
async def batch_process() -> str:
    return "processed"


# "Kubernetes" mapping: Metaflow sets limits equal to requests. In flytelike a scalar is a request (Kubernetes then
# sets the memory limit to the request and no cpu limit); a (request, limit) pair gives exactly Metaflow's pod.
@env.task(
    resources=fl.Resources(cpu=("4", "4"), memory=("16000Mi", "16000Mi"), disk=("50000Mi", "50000Mi")),
    platform=fl.Kubernetes(),
)
async def k8s_pod() -> str:
    return "processed"


# "Best practices": portable (Resources + platform) ...
@env.task(resources=fl.Resources(cpu=4, memory="16000Mi"), platform=fl.Batch())
async def train_portable() -> str:
    return "trained"


# ... versus locked to AWS Batch (the resources live in the platform object).
@env.task(platform=fl.Batch(cpu=4, memory=16000))
async def train_locked() -> str:
    return "trained"


def describe(task: fl.Task[..., Any]) -> str:
    r = task.resolved()
    return f"{task.full_name:<30} {r.platform!r:<12} {r.resources}"


if __name__ == "__main__":
    for task in env.tasks.values():
        print(describe(task))
