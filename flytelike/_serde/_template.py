"""A task and its resolved settings to a protobuf TaskTemplate.

Deterministic: the same definitions give identical bytes on every machine (maps are sorted on the wire, the code
reference is a module name, never a path). The version is a content hash of the template and the source of the
task's module, so any change to the code or the spec gives a new version.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2

from flytelike._accelerators import Device, DeviceClass
from flytelike._interface import NO_DEFAULT, Param
from flytelike._proto.core.v1 import identifier_pb2, interface_pb2, security_pb2, tasks_pb2
from flytelike._resources import AUTO, Amount, Resources
from flytelike._serde._literals import literal_type, to_literal
from flytelike._serde._platform import platform_message
from flytelike._task import Resolved, Task
from flytelike._version import __version__

__all__ = ["DEFAULT_IMAGE", "code_module", "task_template"]

DEFAULT_IMAGE = f"ghcr.io/flytelike/flytelike:{__version__}-py3.11"
TASK_TYPE = "python-task"
ENTRYPOINT = ("python", "-m", "flytelike._entrypoint")

_R = tasks_pb2.Resources
_CLASS = {
    DeviceClass.NVIDIA_GPU: tasks_pb2.GPUAccelerator.NVIDIA_GPU,
    DeviceClass.GOOGLE_TPU: tasks_pb2.GPUAccelerator.GOOGLE_TPU,
    DeviceClass.AMAZON_NEURON: tasks_pb2.GPUAccelerator.AMAZON_NEURON,
    DeviceClass.AMD_GPU: tasks_pb2.GPUAccelerator.AMD_GPU,
    DeviceClass.HABANA_GAUDI: tasks_pb2.GPUAccelerator.HABANA_GAUDI,
}


def _duration(value: timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(value)
    return d


def code_module(task: Task[..., Any]) -> str:
    """The importable module name of a task's code; a script run as ``__main__`` is named after its file."""
    module = task.fn.__module__
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            return Path(main_file).stem
    return module


def _source_digest(module: str) -> str:
    """Hash of the module's source: editing the code must never reuse cached outputs."""
    mod = sys.modules.get(module) or sys.modules.get("__main__")
    file = getattr(mod, "__file__", None)
    if not file:
        return ""
    try:
        st = Path(file).stat()
    except OSError:
        return ""
    # Keyed by path, size and modification time, so an edited file is read again even within one process.
    return _file_digest(str(Path(file).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _resources(r: Resources) -> tasks_pb2.Resources:
    msg = tasks_pb2.Resources()
    amounts: list[tuple[tasks_pb2.Resources.ResourceName.ValueType, Amount | None]] = [
        (_R.CPU, r.cpu),
        (_R.MEMORY, r.memory),
        (_R.EPHEMERAL_STORAGE, r.disk),
    ]
    for name, amount in amounts:
        if amount is None or amount.is_zero:
            continue
        msg.requests.append(tasks_pb2.Resources.ResourceEntry(name=name, value=str(amount.request)))
        if amount.limit is not None:
            msg.limits.append(tasks_pb2.Resources.ResourceEntry(name=name, value=str(amount.limit)))
    if r.gpu_count:
        count = str(r.gpu_count)
        msg.requests.append(tasks_pb2.Resources.ResourceEntry(name=_R.GPU, value=count))
        # Accelerators cannot be overcommitted: the limit always equals the request.
        msg.limits.append(tasks_pb2.Resources.ResourceEntry(name=_R.GPU, value=count))
    return msg


def _extended(r: Resources) -> tasks_pb2.ExtendedResources | None:
    ext = tasks_pb2.ExtendedResources()
    if isinstance(r.gpu, Device):
        # The node-label spelling (nvidia-tesla-t4), as Flyte writes it, not the catalog name (T4).
        accel = tasks_pb2.GPUAccelerator(device=r.gpu.label or r.gpu.device, device_class=_CLASS[r.gpu.device_class])
        if r.gpu.partition:
            accel.partition_size = r.gpu.partition
        else:
            accel.unpartitioned = True
        ext.gpu_accelerator.CopyFrom(accel)
    if r.shm is not None and not (isinstance(r.shm, Amount) and r.shm.is_zero):
        size = "" if r.shm == AUTO else str(r.shm.request)
        ext.shared_memory.CopyFrom(tasks_pb2.SharedMemory(mount_path="/dev/shm", mount_name="dshm", size_limit=size))
    return ext if ext.ListFields() else None


def _variables(params: tuple[Param, ...], task: str) -> interface_pb2.VariableMap:
    out = interface_pb2.VariableMap()
    for p in params:
        var = interface_pb2.Variable(type=literal_type(p.type))
        if p.default is not NO_DEFAULT:
            var.default.CopyFrom(to_literal(p.default, p.type, where=f"{task}({p.name}) default"))
        out.variables.append(interface_pb2.VariableEntry(name=p.name, variable=var))
    return out


def _metadata(task: Task[..., Any], r: Resolved) -> tasks_pb2.TaskMetadata:
    md = tasks_pb2.TaskMetadata(
        runtime=tasks_pb2.RuntimeMetadata(
            type=tasks_pb2.RuntimeMetadata.OTHER, version=__version__, flavor="flytelike"
        ),
        environment=task.env.name,
        description=(task.fn.__doc__ or "").strip(),
    )
    retries = tasks_pb2.RetryPolicy(retries=r.retries.count)
    if r.retries.backoff:
        retries.backoff.CopyFrom(
            tasks_pb2.Backoff(
                initial_delay=_duration(r.retries.backoff),
                multiplier=r.retries.backoff_multiplier,
                max_delay=_duration(r.retries.max_backoff),
            )
        )
    if r.retries.oom_memory_multiplier is not None:
        cap = r.retries.oom_memory_limit
        retries.oom_escalation.CopyFrom(
            tasks_pb2.OomEscalation(memory_factor=r.retries.oom_memory_multiplier, memory_cap=str(cap) if cap else "")
        )
    md.retries.CopyFrom(retries)
    if r.timeout is not None:
        if r.timeout.max_runtime is not None:
            md.timeout.CopyFrom(_duration(r.timeout.max_runtime))
        if r.timeout.max_queued_time is not None:
            md.max_queued_time.CopyFrom(_duration(r.timeout.max_queued_time))
        if r.timeout.deadline is not None:
            md.deadline.CopyFrom(_duration(r.timeout.deadline))
    if r.cache is not None:
        md.cache_enabled = True
        md.cache_version = r.cache.version or ""
        md.cache_ignored_inputs.extend(r.cache.ignored_inputs)
        if r.cache.ttl is not None:
            md.cache_ttl.CopyFrom(_duration(r.cache.ttl))
        md.cache_serializable = r.cache.serialize
        md.cache_salt = r.cache.salt
        md.cache_overwrite = r.cache.behavior == "override"
    return md


def task_template(
    task: Task[..., Any],
    resolved: Resolved | None = None,
    *,
    project: str = "default",
    domain: str = "development",
) -> tasks_pb2.TaskTemplate:
    """The protobuf template of ``task`` with ``resolved`` settings (default: ``task.resolved()``)."""
    r = resolved or task.resolved()
    module = code_module(task)
    container = tasks_pb2.Container(
        image=r.image or DEFAULT_IMAGE,
        command=ENTRYPOINT,
        args=["--module", module, "--task", task.full_name],
        resources=_resources(r.resources),
        env=[tasks_pb2.KeyValuePair(key=k, value=v) for k, v in sorted(r.env_vars.items())],
    )
    t = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            resource_type=identifier_pb2.Identifier.TASK, project=project, domain=domain, name=task.full_name
        ),
        type=TASK_TYPE,
        metadata=_metadata(task, r),
        interface=interface_pb2.TypedInterface(
            inputs=_variables(task.interface.inputs, task.full_name),
            outputs=_variables(task.interface.outputs, task.full_name),
        ),
        container=container,
        config={"flytelike.module": module, "flytelike.async": "true" if task.is_async else "false"},
    )
    if r.secrets:
        t.security_context.CopyFrom(
            security_pb2.SecurityContext(
                secrets=[
                    security_pb2.Secret(
                        group=s.group or "",
                        key=s.key,
                        mount_requirement=security_pb2.Secret.FILE if s.mount_path else security_pb2.Secret.ENV_VAR,
                        env_var=s.env_var or "",
                        mount_path=s.mount_path or "",
                    )
                    for s in r.secrets
                ]
            )
        )
    ext = _extended(r.resources)
    if ext is not None:
        t.extended_resources.CopyFrom(ext)
    if r.reusable is not None:
        t.reuse_policy.CopyFrom(
            tasks_pb2.ReusePolicy(
                min_replicas=r.reusable.min_replicas,
                max_replicas=r.reusable.max_replicas,
                concurrency=r.reusable.concurrency,
            )
        )
        if r.reusable.idle_ttl is not None:
            t.reuse_policy.idle_ttl.CopyFrom(_duration(r.reusable.idle_ttl))
        if r.reusable.scaledown_ttl is not None:
            t.reuse_policy.scaledown_ttl.CopyFrom(_duration(r.reusable.scaledown_ttl))
    if r.platform is not None:
        t.platform.CopyFrom(platform_message(r.platform))
    digest = hashlib.sha256(t.SerializeToString(deterministic=True))
    digest.update(_source_digest(task.fn.__module__).encode())
    t.id.version = digest.hexdigest()[:20]
    return t
