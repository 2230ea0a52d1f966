"""Kubernetes pod settings (:class:`Kubernetes`) and its tolerations (:class:`Toleration`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from flytelike._frozendict import FrozenDict
from flytelike._platforms._common import (
    Platform,
    _dns,
    _label_value,
    _labels,
    _mapping,
    _nonneg_int,
    _qualified_name,
    _resources_of,
    _str,
)
from flytelike._resources import Resources
from flytelike.errors import SpecError

__all__ = ["Kubernetes", "Toleration"]


@dataclass(frozen=True, slots=True)
class Toleration:
    """A Kubernetes toleration, validated as the API server would.

    Example:
        >>> import flytelike as fl
        >>> fl.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule").operator
        'Exists'
    """

    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.key:
            _qualified_name(self.key, "Toleration.key")
        if self.operator not in ("Exists", "Equal"):
            raise SpecError("Toleration.operator", self.operator, "unknown operator", accepted="'Exists', 'Equal'")
        if not self.key and self.operator != "Exists":
            raise SpecError(
                "Toleration.operator", self.operator, "an empty key needs operator 'Exists'", accepted="'Exists'"
            )
        if self.operator == "Exists" and self.value:
            raise SpecError(
                "Toleration.value", self.value, "must be empty when operator is 'Exists'", accepted="operator='Equal'"
            )
        if self.operator == "Equal":
            _label_value(self.value, "Toleration.value")
        if self.effect not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise SpecError(
                "Toleration.effect", self.effect, "unknown effect", accepted="'NoSchedule', 'PreferNoSchedule', "
                "'NoExecute' or '' (all)"
            )  # fmt: skip
        if self.toleration_seconds is not None:
            _nonneg_int(self.toleration_seconds, "Toleration.toleration_seconds")
            if self.effect != "NoExecute":
                raise SpecError(
                    "Toleration.toleration_seconds",
                    self.toleration_seconds,
                    "only applies to effect 'NoExecute'",
                    accepted="effect='NoExecute'",
                )

    @classmethod
    def of(cls, value: object, field: str = "Kubernetes.tolerations") -> Toleration:
        """Accept a Toleration, or a mapping in Kubernetes' own (camelCase) or snake_case spelling."""
        if isinstance(value, Toleration):
            return value
        if not isinstance(value, Mapping):
            raise SpecError(field, value, "not a toleration", accepted="fl.Toleration(...) or {'key': ..., ...}")
        names = {"tolerationSeconds": "toleration_seconds"}
        kwargs = {names.get(str(k), str(k)): v for k, v in value.items()}
        allowed = {f.name for f in fields(cls)}
        if unknown := sorted(set(kwargs) - allowed):
            raise SpecError(field, value, f"unknown toleration field(s) {unknown}", accepted=", ".join(sorted(allowed)))
        return cls(**kwargs)


@dataclass(frozen=True, slots=True, repr=False)
class Kubernetes(Platform):
    """Run as a Kubernetes pod, with scheduling and pod settings.

    Integer ``memory``, ``disk`` and ``shared_memory`` count MiB (as Metaflow's ``@kubernetes``); strings are
    Kubernetes quantities. They combine with ``Resources`` by taking the larger value.

    Example:
        >>> import flytelike as fl
        >>> fl.Kubernetes(namespace="ml", node_selector="pool=gpu,zone=a").node_selector
        {'pool': 'gpu', 'zone': 'a'}
    """

    name: ClassVar[str] = "kubernetes"

    namespace: str | None = None
    node_selector: Mapping[str, str] | str | None = None
    tolerations: Iterable[Toleration | Mapping[str, Any]] | None = None
    service_account: str | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    persistent_volume_claims: Mapping[str, str] | None = None
    qos: Literal["Guaranteed", "Burstable"] | None = None
    image: str | None = None
    cpu: int | float | str | None = None
    memory: int | str | None = None
    disk: int | str | None = None
    gpu: int | None = None
    shared_memory: int | str | None = None

    def __post_init__(self) -> None:

        def set_(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.namespace is not None:
            _dns(self.namespace, "Kubernetes.namespace", subdomain=False)
        if self.node_selector is not None:
            set_("node_selector", FrozenDict(_labels(self.node_selector, "Kubernetes.node_selector")))
        if self.tolerations is not None:
            if isinstance(self.tolerations, str | Mapping | Toleration):
                raise SpecError(
                    "Kubernetes.tolerations",
                    self.tolerations,
                    "must be a list",
                    accepted="[fl.Toleration(...)]",
                )
            set_("tolerations", tuple(Toleration.of(t) for t in self.tolerations))
        if self.service_account is not None:
            _dns(self.service_account, "Kubernetes.service_account", subdomain=True)
        if self.labels is not None:
            set_("labels", FrozenDict(_labels(self.labels, "Kubernetes.labels")))
        if self.annotations is not None:
            notes = _mapping(self.annotations, "Kubernetes.annotations")
            for k, v in notes.items():
                _qualified_name(k, "Kubernetes.annotations key")
                if not isinstance(v, str):
                    raise SpecError(f"Kubernetes.annotations[{k!r}]", v, "must be a string", accepted="'text'")
            if sum(len(k) + len(v) for k, v in notes.items()) > 256 * 1024:
                raise SpecError("Kubernetes.annotations", "...", "total size exceeds 256 KiB", accepted="less text")
            set_("annotations", FrozenDict(sorted(notes.items())))
        if self.image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
            raise SpecError(
                "Kubernetes.image_pull_policy",
                self.image_pull_policy,
                "unknown policy",
                accepted="'Always', 'IfNotPresent', 'Never'",
            )
        if self.persistent_volume_claims is not None:
            claims = _mapping(self.persistent_volume_claims, "Kubernetes.persistent_volume_claims")
            for claim, path in claims.items():
                _dns(claim, "Kubernetes.persistent_volume_claims key", subdomain=True)
                if not isinstance(path, str) or not path.startswith("/"):
                    raise SpecError(
                        f"Kubernetes.persistent_volume_claims[{claim!r}]",
                        path,
                        "the mount path must be absolute",
                        accepted="'/data'",
                    )
            set_("persistent_volume_claims", FrozenDict(sorted(claims.items())))
        if self.qos not in (None, "Guaranteed", "Burstable"):
            raise SpecError("Kubernetes.qos", self.qos, "unknown QoS class", accepted="'Guaranteed', 'Burstable'")
        if self.image is not None:
            _str(self.image, "Kubernetes.image", "'ghcr.io/acme/train:1.4'")
        if self.gpu is not None:
            _nonneg_int(self.gpu, "Kubernetes.gpu")
        self.resources()  # validates cpu/memory/disk/shared_memory now, not when the task is launched

    def resources(self) -> Resources:
        return _resources_of(self.cpu, self.memory, self.gpu, self.disk, self.shared_memory, "Kubernetes")
