"""A task's template as a pod manifest (a plain dict the API server and ``kubectl apply`` accept).

Requests come from the template's Resources; the memory limit equals the memory request unless the task gives a
limit (an out-of-memory retry raises both to the attempt's memory), and cpu is limited only when a limit is given.
Accelerators become their device class's extended resource (``nvidia.com/gpu``, ``amd.com/gpu``,
``aws.amazon.com/neuron``, ``google.com/tpu``, ``habana.ai/gaudi``, or ``nvidia.com/mig-<profile>`` under the mixed
MIG strategy), integers with requests equal to limits, plus the node labels that pick a GPU type, a MIG profile
under the single strategy, or a TPU slice and its topology, and tolerations for the device's taint. Shared memory is
an ``emptyDir`` in memory at ``/dev/shm``; disk is ``ephemeral-storage``; the task's timeout is
``activeDeadlineSeconds``. Secrets are ``secretKeyRef`` variables (or files from a secret volume).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flytelike._backends.kubernetes._names import LABEL_ACTION, LABEL_ATTEMPT, LABEL_EXECUTOR, LABEL_RUN, label_value
from flytelike._config import KubernetesSettings
from flytelike._proto.core.v1 import platforms_pb2, security_pb2, tasks_pb2

__all__ = ["CONTAINER", "PodInput", "pod_manifest"]

CONTAINER = "task"
_R = tasks_pb2.Resources
_DC = tasks_pb2.GPUAccelerator
_DEVICE_RESOURCE = {
    _DC.NVIDIA_GPU: "nvidia.com/gpu",
    _DC.AMD_GPU: "amd.com/gpu",
    _DC.AMAZON_NEURON: "aws.amazon.com/neuron",
    _DC.GOOGLE_TPU: "google.com/tpu",
    _DC.HABANA_GAUDI: "habana.ai/gaudi",
}
_PULL = {
    platforms_pb2.KubernetesPlatform.ALWAYS: "Always",
    platforms_pb2.KubernetesPlatform.IF_NOT_PRESENT: "IfNotPresent",
    platforms_pb2.KubernetesPlatform.NEVER: "Never",
}
_OPERATOR = {platforms_pb2.Toleration.EQUAL: "Equal", platforms_pb2.Toleration.EXISTS: "Exists"}
_EFFECT = {
    platforms_pb2.Toleration.NO_SCHEDULE: "NoSchedule",
    platforms_pb2.Toleration.PREFER_NO_SCHEDULE: "PreferNoSchedule",
    platforms_pb2.Toleration.NO_EXECUTE: "NoExecute",
}


@dataclass(frozen=True, slots=True)
class PodInput:
    """One attempt's pod.

    Attributes:
        template: the task's template.
        name: the pod's name.
        run, action, attempt, executor: its labels.
        command: the container's command (the entrypoint and its arguments).
        env: its environment (the task's ``env_vars`` and what the entrypoint needs).
        memory: the attempt's memory in bytes (0: the template's).
        settings: ``[kubernetes]``.
    """

    template: tasks_pb2.TaskTemplate
    name: str
    run: str
    action: str
    attempt: int
    executor: str
    command: Sequence[str]
    env: Mapping[str, str]
    settings: KubernetesSettings
    memory: int = 0


def _quantities(entries: Any) -> dict[int, str]:
    return {e.name: e.value for e in entries}


def _bytes(n: int) -> str:
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _resources(spec: PodInput, out: dict[str, Any]) -> dict[str, Any]:
    """The container's resources; adds node selectors and tolerations the accelerator needs to ``out``."""
    template = spec.template
    k8s = template.platform.kubernetes
    req, lim = _quantities(template.container.resources.requests), _quantities(template.container.resources.limits)
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if _R.CPU in req:
        requests["cpu"] = req[_R.CPU]
    if _R.CPU in lim:
        limits["cpu"] = lim[_R.CPU]
    if spec.memory:
        requests["memory"] = _bytes(spec.memory)
        limits["memory"] = _bytes(spec.memory)
    else:
        if _R.MEMORY in req:
            requests["memory"] = req[_R.MEMORY]
        if _R.MEMORY in lim or _R.MEMORY in req:
            limits["memory"] = lim.get(_R.MEMORY, req.get(_R.MEMORY, ""))
    disk = req.get(_R.EPHEMERAL_STORAGE) or req.get(_R.STORAGE)
    if disk:
        requests["ephemeral-storage"] = disk
        limits["ephemeral-storage"] = lim.get(_R.EPHEMERAL_STORAGE) or lim.get(_R.STORAGE) or disk
    count = req.get(_R.GPU) or lim.get(_R.GPU)
    if count:
        name = _accelerator(spec, out)
        requests[name] = limits[name] = count
    if k8s.qos == platforms_pb2.KubernetesPlatform.GUARANTEED:
        for key in ("cpu", "memory"):
            if key in requests:
                limits[key] = requests[key]
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _accelerator(spec: PodInput, out: dict[str, Any]) -> str:
    accel = spec.template.extended_resources.gpu_accelerator
    settings = spec.settings
    resource = _DEVICE_RESOURCE.get(accel.device_class, "nvidia.com/gpu")
    selector: dict[str, str] = out.setdefault("nodeSelector", {})
    profile = accel.partition_size if accel.WhichOneof("partition_size_value") == "partition_size" else ""
    if accel.device_class == _DC.GOOGLE_TPU:
        if accel.device:
            selector[settings.tpu_accelerator_label] = accel.device
        if profile:
            selector[settings.tpu_topology_label] = profile
    elif accel.device_class == _DC.NVIDIA_GPU and profile:
        if settings.mig_strategy == "mixed":
            resource = f"nvidia.com/mig-{profile}"
            if accel.device:
                selector[settings.gpu_product_label] = accel.device
        else:
            selector[settings.gpu_product_label] = f"{accel.device}-MIG-{profile}" if accel.device else profile
    elif accel.device:
        selector[settings.gpu_product_label] = accel.device
    if not selector:
        del out["nodeSelector"]
    # Device nodes are usually tainted for their device, so that pods without one stay off them.
    base = resource if not resource.startswith("nvidia.com/mig-") else "nvidia.com/gpu"
    out.setdefault("tolerations", []).append({"key": base, "operator": "Exists", "effect": "NoSchedule"})
    return resource


def _secrets(
    template: tasks_pb2.TaskTemplate, env: list[dict[str, Any]], volumes: list[Any], mounts: list[Any]
) -> None:
    for i, secret in enumerate(template.security_context.secrets):
        # The Secret object is the group when there is one, else the key names both the object and its entry.
        group, key = secret.group or secret.key, secret.key
        if secret.mount_requirement == security_pb2.Secret.FILE:
            volume = f"secret-{i}"
            items = [{"key": key, "path": key}] if key else None
            source: dict[str, Any] = {"secretName": group}
            if items:
                source["items"] = items
            volumes.append({"name": volume, "secret": source})
            mounts.append({"name": volume, "mountPath": secret.mount_path or f"/etc/flytelike/secrets/{group}"})
            continue
        name = secret.env_var or key.upper().replace("-", "_").replace(".", "_")
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": group, "key": key}}})


def pod_manifest(spec: PodInput) -> dict[str, Any]:
    """The pod of one attempt (see the module's docstring)."""
    template, settings = spec.template, spec.settings
    k8s = template.platform.kubernetes
    labels = dict(k8s.labels)
    labels.update(
        {
            LABEL_RUN: label_value(spec.run),
            LABEL_ACTION: label_value(spec.action),
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_EXECUTOR: label_value(spec.executor),
        }
    )
    pod_spec: dict[str, Any] = {"restartPolicy": "Never"}
    env = [{"name": k, "value": v} for k, v in spec.env.items()]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    _secrets(template, env, volumes, mounts)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": template.container.image or settings.image,
        "command": list(spec.command),
        "env": env,
    }
    resources = _resources(spec, pod_spec)
    if resources:
        container["resources"] = resources
    if k8s.image_pull_policy in _PULL:
        container["imagePullPolicy"] = _PULL[k8s.image_pull_policy]
    shm = template.extended_resources.shared_memory
    if template.extended_resources.HasField("shared_memory"):
        empty: dict[str, Any] = {"medium": "Memory"}
        if shm.size_limit:
            empty["sizeLimit"] = shm.size_limit
        volumes.append({"name": shm.mount_name or "dshm", "emptyDir": empty})
        mounts.append({"name": shm.mount_name or "dshm", "mountPath": shm.mount_path or "/dev/shm"})
    for i, (claim, path) in enumerate(sorted(k8s.persistent_volume_claims.items())):
        volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"pvc-{i}", "mountPath": path})
    if mounts:
        container["volumeMounts"] = mounts
    if volumes:
        pod_spec["volumes"] = volumes
    pod_spec["containers"] = [container]
    if k8s.node_selector:
        pod_spec.setdefault("nodeSelector", {}).update(dict(k8s.node_selector))
    for t in k8s.tolerations:
        toleration: dict[str, Any] = {"key": t.key, "operator": _OPERATOR.get(t.operator, "Equal")}
        if t.value:
            toleration["value"] = t.value
        if t.effect in _EFFECT:
            toleration["effect"] = _EFFECT[t.effect]
        if t.HasField("toleration_seconds"):
            toleration["tolerationSeconds"] = t.toleration_seconds
        pod_spec.setdefault("tolerations", []).append(toleration)
    account = k8s.service_account or settings.service_account
    if account:
        pod_spec["serviceAccountName"] = account
    if template.metadata.HasField("timeout"):
        pod_spec["activeDeadlineSeconds"] = max(1, math.ceil(template.metadata.timeout.ToTimedelta().total_seconds()))
    metadata: dict[str, Any] = {"name": spec.name, "labels": labels}
    if k8s.annotations:
        metadata["annotations"] = dict(k8s.annotations)
    namespace = k8s.namespace or settings.namespace
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
