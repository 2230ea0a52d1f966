"""Platform settings (Kubernetes, Batch, Local) to their protobuf messages.

Resource fields a platform names (cpu, memory, gpu, disk, shared memory) are not copied here: they have already
been combined into the task's Resources by taking the larger value, and the template's resources carry them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flytelike._platforms import Local, Platform
from flytelike._proto.core.v1 import platforms_pb2 as pb

if TYPE_CHECKING:
    # Told apart by name below, so that encoding a template does not import the Kubernetes and Batch classes
    # (flytelike._platforms loads them on first use) for tasks that use neither.
    from flytelike._platforms import Batch, Kubernetes

__all__ = ["platform_message"]

_PULL = {
    "Always": pb.KubernetesPlatform.ALWAYS,
    "IfNotPresent": pb.KubernetesPlatform.IF_NOT_PRESENT,
    "Never": pb.KubernetesPlatform.NEVER,
}
_QOS = {"Guaranteed": pb.KubernetesPlatform.GUARANTEED, "Burstable": pb.KubernetesPlatform.BURSTABLE}
_OPERATOR = {"Equal": pb.Toleration.EQUAL, "Exists": pb.Toleration.EXISTS}
_EFFECT = {
    "": pb.Toleration.EFFECT_UNSPECIFIED,
    "NoSchedule": pb.Toleration.NO_SCHEDULE,
    "PreferNoSchedule": pb.Toleration.PREFER_NO_SCHEDULE,
    "NoExecute": pb.Toleration.NO_EXECUTE,
}


def _kubernetes(k: Kubernetes) -> pb.KubernetesPlatform:
    msg = pb.KubernetesPlatform(
        namespace=k.namespace or "",
        node_selector=dict(k.node_selector or {}),  # type: ignore[arg-type]
        service_account=k.service_account or "",
        labels=dict(k.labels or {}),
        annotations=dict(k.annotations or {}),
        persistent_volume_claims=dict(k.persistent_volume_claims or {}),
    )
    for t in k.tolerations or ():
        tol = pb.Toleration(key=t.key, operator=_OPERATOR[t.operator], value=t.value, effect=_EFFECT[t.effect])  # type: ignore[union-attr]
        if t.toleration_seconds is not None:  # type: ignore[union-attr]
            tol.toleration_seconds = t.toleration_seconds  # type: ignore[union-attr]
        msg.tolerations.append(tol)
    if k.image_pull_policy:
        msg.image_pull_policy = _PULL[k.image_pull_policy]
    if k.qos:
        msg.qos = _QOS[k.qos]
    return msg


def _batch(b: Batch) -> pb.BatchPlatform:
    msg = pb.BatchPlatform(
        queue=b.queue or "",
        iam_role=b.iam_role or "",
        execution_role=b.execution_role or "",
        inferentia=b.inferentia or 0,
        trainium=b.trainium or 0,
        efa=b.efa or 0,
        use_tmpfs=bool(b.use_tmpfs),
        tmpfs_path=b.tmpfs_path or "",
        tags=dict(b.tags or {}),
        log_driver=b.log_driver or "",
        log_options=list(b.log_options or ()),
        privileged=bool(b.privileged),
    )
    for name, proto_name in (
        ("shared_memory", "shared_memory_mib"),
        ("max_swap", "max_swap_mib"),
        ("swappiness", "swappiness"),
        ("tmpfs_size", "tmpfs_size_mib"),
        ("ephemeral_storage", "ephemeral_storage_gib"),
    ):
        value = getattr(b, name)
        if value is not None:
            setattr(msg, proto_name, value)
    return msg


def platform_message(platform: Platform) -> pb.Platform:
    """The protobuf form of a platform object; which field is set selects the platform."""
    if platform.name == "kubernetes":
        return pb.Platform(kubernetes=_kubernetes(cast("Kubernetes", platform)))
    if platform.name == "batch":
        return pb.Platform(batch=_batch(cast("Batch", platform)))
    if isinstance(platform, Local):
        return pb.Platform(local=pb.LocalPlatform(process=bool(platform.process)))
    raise TypeError(f"unknown platform {platform!r}")
