"""Task templates as AWS Batch requests: one job definition per container spec, one SubmitJob per attempt.

Pure functions of the template, the ``[batch]`` settings and the compute environment type (EC2 or Fargate): no
client, no I/O, so ``flytelike show --as batch`` prints exactly the bodies the backend sends. The job definition
holds what every attempt of a task shares (image, roles, linuxParameters, logging, the task's own resources); an
attempt's SubmitJob overrides the command, the environment and the resources (its memory grows after an
out-of-memory failure). See ``docs/batch.md`` for the mapping table.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from flytelike._config import BatchSettings
from flytelike._executor import ExecTask
from flytelike._proto.core.v1 import platforms_pb2, tasks_pb2
from flytelike._quantity import Quantity
from flytelike.errors import SpecError

__all__ = [
    "FARGATE_MEMORY",
    "Compute",
    "batch_platform",
    "check_task",
    "job_definition",
    "job_name",
    "memory_mib",
    "queue_of",
    "resource_requirements",
    "submit_job",
]

Compute = Literal["EC2", "FARGATE"]

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_MEMORY_MIB = 2048  # Batch has no default; what a task that names no memory gets on EC2
DEFAULT_TMPFS_PATH = "/flytelike_tmp"
# The image the SDK writes when an environment names none: [batch] image replaces it (backends cannot import the SDK's
# serializer, so the prefix is repeated here; a test keeps the two equal).
SDK_DEFAULT_IMAGE_PREFIX = "ghcr.io/flytelike/flytelike:"
TAG_RUN, TAG_ACTION, TAG_ATTEMPT = "flytelike.io/run", "flytelike.io/action", "flytelike.io/attempt"
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_NAME_MAX = 128


def _steps(first: int, last: int, step: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1, step))


FARGATE_MEMORY: dict[Decimal, tuple[int, ...]] = {
    Decimal("0.25"): (512, 1024, 2048),
    Decimal("0.5"): _steps(1024, 4096, 1024),
    Decimal("1"): _steps(2048, 8192, 1024),
    Decimal("2"): _steps(4096, 16384, 1024),
    Decimal("4"): _steps(8192, 30720, 1024),
    Decimal("8"): _steps(16384, 61440, 4096),
    Decimal("16"): _steps(32768, 122880, 8192),
}
"""The MEMORY values (MiB) Fargate accepts for each VCPU value (the AWS Batch API reference's table)."""

_FARGATE_VCPUS = ", ".join(str(v) for v in FARGATE_MEMORY)
_DeviceClass = tasks_pb2.GPUAccelerator.DeviceClass


def batch_platform(task: ExecTask) -> platforms_pb2.BatchPlatform:
    """The task's ``fl.Batch`` settings (empty ones for a task sent to Batch by ``--with batch`` alone)."""
    template = task.template
    if template.HasField("platform") and template.platform.WhichOneof("kind") == "batch":
        return template.platform.batch
    return platforms_pb2.BatchPlatform()


def queue_of(task: ExecTask, settings: BatchSettings) -> str:
    """The job queue of the task's jobs: its own, else ``[batch] queue``; empty when neither names one."""
    return batch_platform(task).queue or settings.queue


def _image(task: ExecTask, settings: BatchSettings) -> str:
    image = task.template.container.image
    if settings.image and (not image or image.startswith(SDK_DEFAULT_IMAGE_PREFIX)):
        return settings.image
    return image


def _where(task: ExecTask) -> str:
    return f"task {task.name}"


def _vcpus(task: ExecTask, compute: Compute) -> Decimal:
    """The VCPU value: the cpu request (or its limit when only that is set); whole vCPUs on EC2, at least 1."""
    millis = task.cpu_millis or task.cpu_limit_millis
    if not millis:
        return Decimal(1)
    cores = Decimal(millis) / 1000
    if compute == "EC2":
        return Decimal(max(1, math.ceil(cores)))
    return cores


def _fargate_vcpus(task: ExecTask) -> Decimal:
    vcpus = _vcpus(task, "FARGATE")
    if vcpus.normalize() not in FARGATE_MEMORY:
        raise SpecError(
            f"{_where(task)} Resources.cpu",
            _cores(vcpus),
            "is not a vCPU count Fargate offers",
            accepted=_FARGATE_VCPUS,
        )
    return vcpus.normalize()


def _cores(value: Decimal) -> str:
    return format(value.normalize(), "f")


def memory_mib(task: ExecTask, memory: int, compute: Compute, *, strict: bool = False) -> int:
    """The MEMORY value in MiB for an attempt with ``memory`` bytes (0: the task named none).

    On Fargate the value is raised to the next one Fargate accepts for the task's vCPUs; with ``strict`` (the
    task's own request, checked before anything runs) a value Fargate does not accept is an error instead.

    Raises:
        SpecError: on Fargate, no accepted value is that large (or, with ``strict``, the value is not accepted).
    """
    mib = -(-memory // MiB) if memory else 0
    if compute == "EC2":
        return mib or DEFAULT_MEMORY_MIB
    vcpus = _fargate_vcpus(task)
    accepted = FARGATE_MEMORY[vcpus]
    if not mib:
        return accepted[0]
    if strict and mib not in accepted:
        raise SpecError(
            f"{_where(task)} Resources.memory",
            f"{mib}Mi",
            f"is not a memory size Fargate offers with {_cores(vcpus)} vCPU",
            accepted=", ".join(f"{m}Mi" for m in accepted),
        )
    for value in accepted:
        if value >= mib:
            return value
    raise SpecError(
        f"{_where(task)} memory",
        f"{mib}Mi",
        f"is more than Fargate gives {_cores(vcpus)} vCPU (at most {accepted[-1]}Mi)",
        accepted=f"<= {accepted[-1]}Mi, or more Resources.cpu, or an EC2 queue",
    )


def _neuron_devices(task: ExecTask) -> int:
    platform = batch_platform(task)
    accel = task.template.extended_resources.gpu_accelerator
    from_resources = task.gpus if accel.device_class == _DeviceClass.AMAZON_NEURON else 0
    return max(from_resources, platform.inferentia or platform.trainium)


def _gpus(task: ExecTask) -> int:
    accel = task.template.extended_resources.gpu_accelerator
    return task.gpus if accel.device_class == _DeviceClass.NVIDIA_GPU else 0


def resource_requirements(task: ExecTask, memory: int, compute: Compute) -> list[dict[str, str]]:
    """``resourceRequirements``: VCPU, MEMORY in MiB for ``memory`` bytes, and GPU when the task has NVIDIA GPUs."""
    vcpus = _fargate_vcpus(task) if compute == "FARGATE" else _vcpus(task, compute)
    found = [
        {"type": "VCPU", "value": _cores(vcpus)},
        {"type": "MEMORY", "value": str(memory_mib(task, memory, compute))},
    ]
    if _gpus(task):
        found.append({"type": "GPU", "value": str(_gpus(task))})
    return found


def _shared_memory_mib(task: ExecTask) -> int | None:
    platform = batch_platform(task)
    if platform.HasField("shared_memory_mib"):
        return int(platform.shared_memory_mib)
    if not task.template.extended_resources.HasField("shared_memory"):
        return None
    size = task.template.extended_resources.shared_memory.size_limit
    if size:
        return max(1, Quantity.parse(size, field="shared_memory.size_limit").ceil_to(MiB))
    # shm="auto": as large as the task's memory (it is counted against the container's memory anyway).
    return memory_mib(task, task.memory, "EC2")


def _linux_parameters(task: ExecTask) -> dict[str, Any]:
    platform = batch_platform(task)
    params: dict[str, Any] = {}
    shm = _shared_memory_mib(task)
    if shm is not None:
        params["sharedMemorySize"] = shm
    if platform.HasField("max_swap_mib"):
        params["maxSwap"] = int(platform.max_swap_mib)
        if platform.HasField("swappiness"):
            params["swappiness"] = int(platform.swappiness)
    if platform.use_tmpfs:
        size = (
            int(platform.tmpfs_size_mib)
            if platform.HasField("tmpfs_size_mib")
            else max(1, memory_mib(task, task.memory, "EC2") // 2)
        )
        params["tmpfs"] = [
            {"containerPath": platform.tmpfs_path or DEFAULT_TMPFS_PATH, "size": size, "mountOptions": ["noatime"]}
        ]
    devices = [
        {"hostPath": f"/dev/neuron{i}", "containerPath": f"/dev/neuron{i}", "permissions": ["READ", "WRITE"]}
        for i in range(_neuron_devices(task))
    ]
    devices += [
        {
            "hostPath": f"/dev/infiniband/uverbs{i}",
            "containerPath": f"/dev/infiniband/uverbs{i}",
            "permissions": ["READ", "WRITE", "MKNOD"],
        }
        for i in range(platform.efa)
    ]
    if devices:
        params["devices"] = devices
    return params


def _environment(pairs: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def _template_env(task: ExecTask) -> dict[str, str]:
    return {kv.key: kv.value for kv in task.template.container.env}  # later entries win, as in the template


def _ephemeral_gib(task: ExecTask) -> int | None:
    platform = batch_platform(task)
    if platform.HasField("ephemeral_storage_gib"):
        return int(platform.ephemeral_storage_gib)
    for entry in task.template.container.resources.requests:
        if entry.name == tasks_pb2.Resources.EPHEMERAL_STORAGE:
            return Quantity.parse(entry.value, field="resources.disk").ceil_to(GiB)
    return None


def job_definition(task: ExecTask, settings: BatchSettings, compute: Compute) -> dict[str, Any]:
    """The RegisterJobDefinition body of the task's container spec, named ``fl-<sha256(spec)[:16]>``."""
    platform = batch_platform(task)
    container: dict[str, Any] = {
        "image": _image(task, settings),
        "command": list(settings.entrypoint),
        "resourceRequirements": resource_requirements(task, task.memory_limit or task.memory, compute),
    }
    env = _template_env(task)
    if env:
        container["environment"] = _environment(env)
    job_role = platform.iam_role or settings.job_role
    if job_role:
        container["jobRoleArn"] = job_role
    execution_role = platform.execution_role or settings.execution_role
    if execution_role:
        container["executionRoleArn"] = execution_role
    if compute == "EC2":
        params = _linux_parameters(task)
        if params:
            container["linuxParameters"] = params
        if platform.privileged:
            container["privileged"] = True
    else:
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        gib = _ephemeral_gib(task)
        if gib is not None:
            container["ephemeralStorage"] = {"sizeInGiB": max(21, gib)}
    if platform.log_driver or platform.log_options:
        log: dict[str, Any] = {"logDriver": platform.log_driver or "awslogs"}
        if platform.log_options:
            log["options"] = dict(option.split(":", 1) for option in platform.log_options)
        container["logConfiguration"] = log
    body: dict[str, Any] = {
        "type": "container",
        "platformCapabilities": [compute],
        "containerProperties": container,
        # flytelike retries an attempt as a new job, so its memory can change: Batch itself never retries.
        "retryStrategy": {"attempts": 1},
        "propagateTags": True,
    }
    spec = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {"jobDefinitionName": "fl-" + hashlib.sha256(spec.encode()).hexdigest()[:16], **body}


def job_name(run: str, action: str, attempt: int) -> str:
    """``fl-<run>-<action>-<attempt>`` within Batch's rules (1-128 letters, digits, ``-`` and ``_``).

    Dots of action ids become ``_`` (so ``0.1`` attempt 2 and ``0`` ... never meet); a name too long keeps its
    start and ends in a digest of the whole.
    """
    full = f"fl-{run}-{action.replace('.', '_')}-{attempt}"
    name = _BAD_NAME_CHARS.sub("-", full)
    if len(name) <= _NAME_MAX and name == full:
        return name
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{name[: _NAME_MAX - 17]}-{digest}"


def submit_job(
    task: ExecTask,
    settings: BatchSettings,
    compute: Compute,
    *,
    name: str,
    definition: str,
    command: Sequence[str],
    environment: Mapping[str, str],
    memory: int,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """The SubmitJob body of one attempt.

    Args:
        name: the job's name (:func:`job_name`).
        definition: the job definition's ARN (or ``name:revision``).
        command: the whole command (the entrypoint and its arguments).
        environment: the attempt's variables; those the job definition already sets to the same value are left out.
        memory: the attempt's memory in bytes (0: the task named none).
        tags: run, action and attempt tags (they win over the task's own tags of the same keys).
    """
    shared = _template_env(task)
    overrides: dict[str, Any] = {
        "command": list(command),
        "resourceRequirements": resource_requirements(task, memory, compute),
    }
    extra = {k: v for k, v in environment.items() if shared.get(k) != v}
    if extra:
        overrides["environment"] = _environment(extra)
    body: dict[str, Any] = {
        "jobName": name,
        "jobQueue": queue_of(task, settings),
        "jobDefinition": definition,
        "containerOverrides": overrides,
        "tags": {**dict(batch_platform(task).tags), **tags},
        "propagateTags": True,
    }
    if task.timeout is not None:
        body["timeout"] = {"attemptDurationSeconds": max(60, math.ceil(task.timeout))}
    return body


def check_task(task: ExecTask, settings: BatchSettings, compute: Compute | None) -> None:
    """Refuse what Batch would refuse for this task, naming the setting, its value and what is accepted.

    ``compute`` None (the queue's type is not known yet) checks what holds on both.

    Raises:
        SpecError: no queue, a device Batch cannot attach, or a setting the compute environment type does not take.
    """
    where = _where(task)
    platform = batch_platform(task)
    if not queue_of(task, settings):
        raise SpecError(
            f"{where} Batch.queue",
            "",
            "no job queue: the task's fl.Batch names none and [batch] queue is not set",
            accepted="fl.Batch(queue='my-queue') or [batch] queue = 'my-queue' (FLYTELIKE_BATCH__QUEUE)",
        )
    if not _image(task, settings):
        raise SpecError(f"{where} image", "", "a Batch job needs an image", accepted="image= or [batch] image")
    accel = task.template.extended_resources.gpu_accelerator
    if task.gpus and accel.device_class not in (_DeviceClass.NVIDIA_GPU, _DeviceClass.AMAZON_NEURON):
        raise SpecError(
            f"{where} Resources.gpu",
            accel.device or _DeviceClass.Name(accel.device_class),
            "AWS Batch attaches NVIDIA GPUs and Neuron (Inferentia, Trainium) devices only",
            accepted="an NVIDIA GPU ('A10G:1'), a Neuron device, or the kubernetes platform",
        )
    if platform.HasField("swappiness") and not platform.HasField("max_swap_mib"):
        raise SpecError(
            f"{where} Batch.swappiness", platform.swappiness, "has no effect without max_swap", accepted="max_swap=..."
        )
    if compute == "EC2":
        if platform.HasField("ephemeral_storage_gib"):
            raise SpecError(
                f"{where} Batch.ephemeral_storage",
                platform.ephemeral_storage_gib,
                f"is for Fargate queues; queue {queue_of(task, settings)!r} runs on EC2",
                accepted="unset on EC2 (the instance's disk), or a Fargate queue",
            )
        return
    if compute == "FARGATE":
        _check_fargate(task, settings)


def _check_fargate(task: ExecTask, settings: BatchSettings) -> None:
    where, platform = _where(task), batch_platform(task)
    queue = queue_of(task, settings)
    on = f"is not available on Fargate (queue {queue!r})"
    ec2 = "unset, or an EC2 queue"
    if _gpus(task):
        raise SpecError(f"{where} Resources.gpu", task.gpus, on, accepted=ec2)
    if _neuron_devices(task):
        raise SpecError(f"{where} Batch.inferentia", _neuron_devices(task), on, accepted=ec2)
    for present, name, value in (
        (platform.efa > 0, "efa", platform.efa),
        (platform.use_tmpfs, "use_tmpfs", True),
        (platform.privileged, "privileged", True),
        (platform.HasField("max_swap_mib"), "max_swap", platform.max_swap_mib),
        (_shared_memory_mib(task) is not None, "shared_memory", _shared_memory_mib(task)),
    ):
        if present:
            raise SpecError(f"{where} Batch.{name}", value, on, accepted=ec2)
    if not (platform.execution_role or settings.execution_role):
        raise SpecError(
            f"{where} Batch.execution_role",
            "",
            f"Fargate jobs need an execution role (queue {queue!r})",
            accepted="fl.Batch(execution_role='arn:aws:iam::...') or [batch] execution_role",
        )
    gib = _ephemeral_gib(task)
    if gib is not None and gib > 200:
        raise SpecError(f"{where} ephemeral storage", f"{gib}Gi", "is more than Fargate gives", accepted="21-200 GiB")
    memory_mib(task, task.memory_limit or task.memory, "FARGATE", strict=True)
