"""The checks of RegisterJobDefinition and SubmitJob that moto does not make, as the Batch API reference states them.

Each failed check raises :class:`BatchClientError` with the detail Batch would report (naming the field, the bad
value and what is accepted); the emulator answers it as Batch does, a ``ClientException`` (HTTP 400) whose message
reads ``Error executing request, Exception : <detail>, RequestId: <id>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "FARGATE_MEMORY",
    "BatchClientError",
    "Resources",
    "check_container_overrides",
    "check_job_definition",
    "check_job_name",
    "check_tags",
    "check_timeout",
    "effective_resources",
]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_RESOURCE_TYPES = ("VCPU", "MEMORY", "GPU")
_MOUNT_OPTION_NAMES = (
    "defaults ro rw suid nosuid dev nodev exec noexec sync async dirsync remount mand nomand atime noatime diratime "
    "nodiratime bind rbind unbindable runbindable private rprivate shared rshared slave rslave relatime norelatime "
    "strictatime nostrictatime mode uid gid nr_inodes nr_blocks mpol"
)
_MOUNT_OPTIONS = frozenset(_MOUNT_OPTION_NAMES.split())
_DEVICE_PERMISSIONS = ("READ", "WRITE", "MKNOD")
_LINUX_PARAMETERS = ("devices", "initProcessEnabled", "sharedMemorySize", "tmpfs", "maxSwap", "swappiness")


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
"""The MEMORY values (MiB) Fargate accepts for each VCPU value."""


class BatchClientError(Exception):
    """A request Batch would refuse with a ClientException; the argument is the detail of its message."""


Resources = dict[str, str]
"""resourceRequirements as a mapping of type (VCPU, MEMORY, GPU) to value."""


def check_job_name(name: Any) -> None:
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise BatchClientError(
            f"Job name should match valid pattern: jobName {name!r} must be 1 to 128 letters, numbers, hyphens or "
            "underscores, the first a letter or number (e.g. 'fl-run-1')"
        )


def check_job_definition_name(name: Any) -> None:
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise BatchClientError(
            f"Provided name {name} is not supported pattern[a-zA-Z_0-9-]{{1,128}}: jobDefinitionName {name!r} must be "
            "1 to 128 letters, numbers, hyphens or underscores, the first a letter or number"
        )


def check_timeout(timeout: Any, field: str = "timeout") -> None:
    if timeout is None:
        return
    if not isinstance(timeout, Mapping):
        raise BatchClientError(f"{field} {timeout!r} must be an object such as {{'attemptDurationSeconds': 600}}")
    seconds = timeout.get("attemptDurationSeconds")
    if seconds is None:
        return
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 60:
        raise BatchClientError(
            f"{field}.attemptDurationSeconds {seconds!r} is not valid: the minimum is 60 seconds (a whole number)"
        )


def check_tags(tags: Any) -> None:
    if tags is None:
        return
    if not isinstance(tags, Mapping):
        raise BatchClientError(f"tags {tags!r} must be a map of tag keys to values")
    if len(tags) > 50:
        raise BatchClientError(f"tags has {len(tags)} entries: at most 50 tags are accepted")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise BatchClientError(f"tag key {key!r} is not valid: a key has 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise BatchClientError(f"tag key {key!r} is not valid: the prefix 'aws:' is reserved for AWS use")
        if not isinstance(value, str) or len(value) > 256:
            raise BatchClientError(f"tag value {value!r} of key {key!r} is not valid: a value has 0 to 256 characters")


def _resource_map(requirements: Any, field: str) -> Resources:
    if requirements is None:
        return {}
    if not isinstance(requirements, Sequence) or isinstance(requirements, str):
        raise BatchClientError(f"{field} {requirements!r} must be a list of {{'type': ..., 'value': ...}} objects")
    found: Resources = {}
    for item in requirements:
        kind = item.get("type") if isinstance(item, Mapping) else None
        value = item.get("value") if isinstance(item, Mapping) else None
        if kind not in _RESOURCE_TYPES:
            raise BatchClientError(f"{field} type {kind!r} is not valid; accepted types: VCPU, MEMORY, GPU")
        if not isinstance(value, str):
            raise BatchClientError(
                f"{field} value {value!r} for {kind} must be a string (e.g. {{'type': 'MEMORY', 'value': '2048'}})"
            )
        if kind in found:
            raise BatchClientError(f"{field} gives {kind} twice ({found[kind]!r} and {value!r}); give it once")
        _check_resource_value(kind, value, field)
        found[kind] = value
    return found


def _check_resource_value(kind: str, value: str, field: str) -> None:
    if kind == "VCPU":
        number = _decimal(value)
        if number is None or number <= 0:
            raise BatchClientError(
                f"{field} VCPU value {value!r} is not valid: give a number of vCPUs above 0 (e.g. '2')"
            )
    elif kind == "MEMORY":
        if not value.isdigit() or int(value) < 4:
            raise BatchClientError(
                f"{field} MEMORY value {value!r} is not valid: give whole MiB, at least 4 (e.g. '2048')"
            )
    elif not value.isdigit() or int(value) < 1:
        raise BatchClientError(f"{field} GPU value {value!r} is not valid: give a whole number of GPUs (e.g. '1')")


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def effective_resources(container: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> Resources:
    """The job definition's resourceRequirements (or its deprecated vcpus/memory), overridden per type."""
    found = _resource_map(container.get("resourceRequirements"), "containerProperties.resourceRequirements")
    for legacy, kind in (("vcpus", "VCPU"), ("memory", "MEMORY")):
        if kind not in found and container.get(legacy) is not None:
            found[kind] = str(container[legacy])
    if overrides:
        found.update(_resource_map(overrides.get("resourceRequirements"), "containerOverrides.resourceRequirements"))
        for legacy, kind in (("vcpus", "VCPU"), ("memory", "MEMORY")):
            if overrides.get(legacy) is not None:
                found[kind] = str(overrides[legacy])
    return found


def _check_fargate_resources(resources: Resources) -> None:
    if "GPU" in resources:
        raise BatchClientError(
            f"GPU resource requirement ({resources['GPU']}) is not supported for jobs that run on Fargate resources; "
            "use an EC2 compute environment for GPUs"
        )
    vcpu = _decimal(resources.get("VCPU", "")) if "VCPU" in resources else None
    if vcpu is None:
        raise BatchClientError("vCPU is not provided. Fargate jobs need a VCPU resource requirement")
    if "MEMORY" not in resources:
        raise BatchClientError("Memory is not provided. Fargate jobs need a MEMORY resource requirement")
    memory = int(resources["MEMORY"])
    accepted = FARGATE_MEMORY.get(vcpu.normalize())
    if accepted is None or memory not in accepted:
        if accepted is None:
            hint = "VCPU must be one of " + ", ".join(str(v) for v in FARGATE_MEMORY)
        else:
            hint = f"MEMORY for {vcpu.normalize()} vCPU must be one of " + ", ".join(str(m) for m in accepted)
        raise BatchClientError(f"Fargate resource requirements ({vcpu:.2f} vCPU, {memory} MiB) not valid. {hint}")


def _check_linux_parameters(params: Any, *, fargate: bool) -> None:
    if params is None:
        return
    field = "containerProperties.linuxParameters"
    if not isinstance(params, Mapping):
        raise BatchClientError(f"{field} {params!r} must be an object")
    for key in params:
        if key not in _LINUX_PARAMETERS:
            raise BatchClientError(f"{field}.{key} is not a linux parameter; accepted: {', '.join(_LINUX_PARAMETERS)}")
        if fargate and key != "initProcessEnabled":
            raise BatchClientError(f"{field}.{key} is not applicable to jobs that run on Fargate resources")
    for key, minimum in (("sharedMemorySize", 1), ("maxSwap", 0)):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise BatchClientError(f"{field}.{key} {value!r} is not valid: give whole MiB, at least {minimum}")
    swappiness = params.get("swappiness")
    if swappiness is not None and (
        isinstance(swappiness, bool) or not isinstance(swappiness, int) or not 0 <= swappiness <= 100
    ):
        raise BatchClientError(f"{field}.swappiness {swappiness!r} is not valid: give a whole number from 0 to 100")
    for index, mount in enumerate(params.get("tmpfs") or ()):
        where = f"{field}.tmpfs[{index}]"
        path, size = mount.get("containerPath"), mount.get("size")
        if not isinstance(path, str) or not path.startswith("/"):
            raise BatchClientError(f"{where}.containerPath {path!r} is not valid: give an absolute path such as '/tmp'")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise BatchClientError(f"{where}.size {size!r} is not valid: give whole MiB, at least 1")
        for option in mount.get("mountOptions") or ():
            if option.split("=", 1)[0] not in _MOUNT_OPTIONS:
                raise BatchClientError(f"{where}.mountOptions {option!r} is not a tmpfs mount option (e.g. 'noexec')")
    for index, device in enumerate(params.get("devices") or ()):
        where = f"{field}.devices[{index}]"
        if not isinstance(device.get("hostPath"), str) or not device["hostPath"]:
            raise BatchClientError(f"{where}.hostPath {device.get('hostPath')!r} is required (e.g. '/dev/neuron0')")
        for permission in device.get("permissions") or ():
            if permission not in _DEVICE_PERMISSIONS:
                raise BatchClientError(f"{where}.permissions {permission!r} is not valid; accepted: READ, WRITE, MKNOD")


def _check_ephemeral_storage(storage: Any) -> None:
    if storage is None:
        return
    size = storage.get("sizeInGiB") if isinstance(storage, Mapping) else None
    if isinstance(size, bool) or not isinstance(size, int) or not 21 <= size <= 200:
        raise BatchClientError(
            f"containerProperties.ephemeralStorage.sizeInGiB {size!r} is not valid: give whole GiB from 21 to 200"
        )


def _check_environment(environment: Any, field: str) -> None:
    for item in environment or ():
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise BatchClientError(f"{field} entry {item!r} needs a 'name' (and a 'value')")
        if name.startswith("AWS_BATCH"):
            raise BatchClientError(
                f"{field} name {name!r} is not valid: names starting with AWS_BATCH are reserved for AWS Batch"
            )


def check_job_definition(request: Mapping[str, Any]) -> None:
    """RegisterJobDefinition's body (as sent: camelCase keys)."""
    check_job_definition_name(request.get("jobDefinitionName"))
    if request.get("nodeProperties") is not None or request.get("eksProperties") is not None:
        raise BatchClientError("this emulator runs container jobs only: give containerProperties")
    container = request.get("containerProperties")
    if not isinstance(container, Mapping):
        raise BatchClientError("containerProperties must be provided for a job definition of type container")
    fargate = "FARGATE" in (request.get("platformCapabilities") or ())
    if fargate:
        for legacy in ("vcpus", "memory"):
            if container.get(legacy) is not None:
                raise BatchClientError(f"{legacy} is not applicable for Fargate. Use resource requirements instead.")
    resources = effective_resources(container, None)
    if fargate:
        _check_fargate_resources(resources)
    else:
        if "VCPU" not in resources:
            raise BatchClientError("vCPU is not provided. Give a VCPU resource requirement (e.g. '1')")
        if "MEMORY" not in resources:
            raise BatchClientError("Memory is not provided. Give a MEMORY resource requirement in MiB (e.g. '2048')")
    _check_linux_parameters(container.get("linuxParameters"), fargate=fargate)
    _check_ephemeral_storage(container.get("ephemeralStorage"))
    _check_environment(container.get("environment"), "containerProperties.environment")
    check_timeout(request.get("timeout"))
    check_tags(request.get("tags"))


def check_container_overrides(
    overrides: Mapping[str, Any] | None, container: Mapping[str, Any], *, fargate: bool
) -> Resources:
    """SubmitJob's containerOverrides against its job definition; returns the job's resource requirements."""
    overrides = overrides or {}
    command = overrides.get("command")
    if command is not None and (
        not isinstance(command, Sequence) or isinstance(command, str) or not all(isinstance(c, str) for c in command)
    ):
        raise BatchClientError(f"containerOverrides.command {command!r} must be a list of strings")
    if fargate:
        for legacy in ("vcpus", "memory"):
            if overrides.get(legacy) is not None:
                raise BatchClientError(f"{legacy} is not applicable for Fargate. Use resource requirements instead.")
    _check_environment(overrides.get("environment"), "containerOverrides.environment")
    resources = effective_resources(container, overrides)
    if fargate:
        _check_fargate_resources(resources)
    return resources
