"""Platform settings: where a task runs (Kubernetes, AWS Batch, this machine) and how, beyond its Resources.

A task with a platform always runs there; a task with only ``Resources`` runs wherever the run sends it. Every
field defaults to ``None`` (unset), so an overlay can tell what was really given: attributes a task sets win over
``--with``, while resources named on both sides take the larger value.

Example:
    >>> import flytelike as fl
    >>> fl.Batch(cpu=4, memory=8000, queue="gpu").resources()
    Resources(cpu='4', memory='8000Mi')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal

from flytelike._frozendict import FrozenDict
from flytelike._resources import Resources, cpu_amount, size_amount
from flytelike.errors import SpecError

__all__ = ["Batch", "Kubernetes", "Local", "Platform", "Toleration"]

# Patterns as text: re compiles (and caches) one on first use, so a run that validates no Kubernetes or Batch
# settings does not compile them at import.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_NAME_PART = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_AWS_TAG = r"[\w .:/=+\-@]*"


def _str(value: object, field: str, accepted: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(field, value, "must be a non-empty string", accepted=accepted)
    return value


def _dns(value: object, field: str, *, subdomain: bool) -> str:
    text = _str(value, field, "lowercase letters, digits and '-', e.g. 'ml-team'")
    pattern, limit = (_DNS_SUBDOMAIN, 253) if subdomain else (_DNS_LABEL, 63)
    if len(text) > limit or not re.fullmatch(pattern, text):
        raise SpecError(
            field,
            value,
            f"not a valid Kubernetes name (DNS-1123 {'subdomain' if subdomain else 'label'}, at most {limit} chars)",
            accepted="lowercase letters, digits and '-', starting and ending with a letter or digit: 'ml-team'",
        )
    return text


def _qualified_name(key: object, field: str) -> str:
    text = _str(key, field, "'app', 'example.com/team'")
    prefix, slash, name = text.rpartition("/")
    ok = len(name) <= 63 and re.fullmatch(_NAME_PART, name) is not None
    if slash:
        ok = ok and len(prefix) <= 253 and re.fullmatch(_DNS_SUBDOMAIN, prefix) is not None
    if not ok:
        raise SpecError(
            field,
            key,
            "not a valid Kubernetes label/annotation key",
            accepted="an optional DNS prefix and '/', then at most 63 of [A-Za-z0-9-_.], e.g. 'example.com/team'",
        )
    return text


def _label_value(value: object, field: str) -> str:
    if not isinstance(value, str) or (value and (len(value) > 63 or not re.fullmatch(_NAME_PART, value))):
        raise SpecError(
            field,
            value,
            "not a valid Kubernetes label value",
            accepted="at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric, or ''",
        )
    return value


def _mapping(value: object, field: str) -> dict[str, Any]:
    if isinstance(value, str):
        # "k=v,k2=v2", the shape Kubernetes tooling uses on command lines.
        out: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            key, eq, val = item.partition("=")
            if not eq:
                raise SpecError(field, value, f"{item!r} has no '='", accepted="'key=value,key2=value2'")
            out[key.strip()] = val.strip()
        return out
    if not isinstance(value, Mapping):
        raise SpecError(field, value, "must be a mapping", accepted="{'key': 'value'} or 'key=value,key2=value2'")
    return dict(value)


def _labels(value: object, field: str) -> dict[str, str]:
    return {
        _qualified_name(k, f"{field} key"): _label_value(v, f"{field}[{k!r}]")
        for k, v in sorted(_mapping(value, field).items())
    }


def _nonneg_int(value: object, field: str, *, unit: str = "", example: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(field, value, "must be a whole number >= 0", accepted=f"e.g. {example}{unit}")
    return value


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(field, value, "must be True or False", accepted="True, False")
    return value


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


class Platform:
    """Base of the platform settings; ``name`` is what ``--with NAME`` selects."""

    __slots__ = ()
    name: ClassVar[str]

    def __repr__(self) -> str:
        given = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.field_names() if self.is_set(n))
        return f"{type(self).__name__}({given})"

    def resources(self) -> Resources:
        """The resources this platform object names itself (cpu, memory, gpu, disk, shm), else empty."""
        return Resources()

    def is_set(self, field: str) -> bool:
        return getattr(self, field) is not None

    def overlay(self, base: Platform) -> Platform:
        """``self`` over ``base`` (same platform): attributes set here win, the rest come from ``base``."""
        if type(base) is not type(self):
            raise SpecError(
                "platform",
                base,
                f"cannot combine {base.name} settings with {self.name} settings",
                accepted=f"another fl.{type(self).__name__}(...)",
            )
        merged = {f.name: getattr(self, f.name) for f in fields(self) if self.is_set(f.name)}  # type: ignore[arg-type]
        return replace(base, **merged)  # type: ignore[type-var]

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]


def _resources_of(cpu: object, memory: object, gpu: int | None, disk: object, shm: object, owner: str) -> Resources:
    return Resources._of(
        cpu=cpu_amount(cpu, f"{owner}.cpu"),
        memory=size_amount(memory, f"{owner}.memory"),
        gpu=gpu,
        disk=size_amount(disk, f"{owner}.disk"),
        shm=size_amount(shm, f"{owner}.shared_memory"),
    )


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


_LOG_DRIVERS = ("awsfirelens", "awslogs", "fluentd", "gelf", "journald", "json-file", "splunk", "syslog")


def _aws_tags(value: object) -> dict[str, str]:
    tags = _mapping(value, "Batch.tags")
    if len(tags) > 50:
        raise SpecError("Batch.tags", f"{len(tags)} tags", "AWS allows at most 50 tags", accepted="<= 50 tags")
    for k, v in tags.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 128 or not re.fullmatch(_AWS_TAG, k):
            raise SpecError(
                "Batch.tags key",
                k,
                "not a valid AWS tag key",
                accepted="1-128 letters, digits, spaces and _.:/=+-@",
            )
        if k.lower().startswith("aws:"):
            raise SpecError("Batch.tags key", k, "the 'aws:' prefix is reserved by AWS", accepted="'team'")
        if not isinstance(v, str) or len(v) > 256 or not re.fullmatch(_AWS_TAG, v):
            raise SpecError(
                f"Batch.tags[{k!r}]",
                v,
                "not a valid AWS tag value",
                accepted="0-256 letters, digits, spaces, _.:/=+-@",
            )
    return FrozenDict(sorted(tags.items()))


@dataclass(frozen=True, slots=True, repr=False)
class Batch(Platform):
    """Run as an AWS Batch job.

    Integer ``memory``, ``shared_memory``, ``max_swap`` and ``tmpfs_size`` count MiB, as AWS Batch does;
    ``ephemeral_storage`` counts GiB (21-200, Fargate only). ``cpu``, ``memory`` and ``gpu`` combine with
    ``Resources`` by taking the larger value.

    Example:
        >>> import flytelike as fl
        >>> fl.Batch(queue="gpu-queue", gpu=2).resources().gpu
        2
    """

    name: ClassVar[str] = "batch"

    queue: str | None = None
    iam_role: str | None = None
    execution_role: str | None = None
    shared_memory: int | None = None
    max_swap: int | None = None
    swappiness: int | None = None
    inferentia: int | None = None
    trainium: int | None = None
    efa: int | None = None
    use_tmpfs: bool | None = None
    tmpfs_size: int | None = None
    tmpfs_path: str | None = None
    ephemeral_storage: int | None = None
    tags: Mapping[str, str] | None = None
    log_driver: str | None = None
    log_options: Iterable[str] | None = None
    privileged: bool | None = None
    image: str | None = None
    cpu: int | float | str | None = None
    memory: int | str | None = None
    gpu: int | None = None

    def __post_init__(self) -> None:
        for name in ("queue", "iam_role", "execution_role", "image"):
            if getattr(self, name) is not None:
                _str(getattr(self, name), f"Batch.{name}", "a name or an ARN")
        for name in ("shared_memory", "max_swap", "tmpfs_size"):
            if getattr(self, name) is not None:
                _nonneg_int(getattr(self, name), f"Batch.{name}", unit=" (MiB)", example=1024)
        for name in ("inferentia", "trainium", "efa", "gpu"):
            if getattr(self, name) is not None:
                _nonneg_int(getattr(self, name), f"Batch.{name}")
        if self.swappiness is not None and (
            isinstance(self.swappiness, bool) or not isinstance(self.swappiness, int) or not 0 <= self.swappiness <= 100
        ):
            raise SpecError("Batch.swappiness", self.swappiness, "must be a whole number from 0 to 100", accepted="60")
        if self.inferentia and self.trainium:
            raise SpecError(
                "Batch.trainium",
                self.trainium,
                f"inferentia={self.inferentia} is also set; trainium is an alias of inferentia",
                accepted="only one of inferentia= or trainium=",
            )
        for name in ("use_tmpfs", "privileged"):
            if getattr(self, name) is not None:
                _bool(getattr(self, name), f"Batch.{name}")
        if self.tmpfs_path is not None and (
            not isinstance(self.tmpfs_path, str) or not self.tmpfs_path.startswith("/")
        ):
            raise SpecError(
                "Batch.tmpfs_path", self.tmpfs_path, "must be an absolute path", accepted="'/flytelike_tmp'"
            )
        if (self.tmpfs_size is not None or self.tmpfs_path is not None) and self.use_tmpfs is False:
            raise SpecError(
                "Batch.use_tmpfs",
                False,
                "tmpfs_size/tmpfs_path are set but tmpfs is disabled",
                accepted="True",
            )
        if self.ephemeral_storage is not None and (
            isinstance(self.ephemeral_storage, bool)
            or not isinstance(self.ephemeral_storage, int)
            or not 21 <= self.ephemeral_storage <= 200
        ):
            raise SpecError(
                "Batch.ephemeral_storage",
                self.ephemeral_storage,
                "Fargate ephemeral storage is a whole number of GiB from 21 to 200",
                accepted="21-200 (GiB)",
            )
        if self.tags is not None:
            object.__setattr__(self, "tags", _aws_tags(self.tags))
        if self.log_driver is not None and self.log_driver not in _LOG_DRIVERS:
            raise SpecError("Batch.log_driver", self.log_driver, "unknown log driver", accepted=", ".join(_LOG_DRIVERS))
        if self.log_options is not None:
            options = [self.log_options] if isinstance(self.log_options, str) else list(self.log_options)
            for option in options:
                if not isinstance(option, str) or ":" not in option:
                    raise SpecError(
                        "Batch.log_options",
                        option,
                        "expected 'name:value'",
                        accepted="'awslogs-group:aws/batch/job'",
                    )
            if self.log_driver is None:
                raise SpecError("Batch.log_options", options, "log options need a log_driver", accepted="'awslogs'")
            object.__setattr__(self, "log_options", tuple(options))
        self.resources()

    def resources(self) -> Resources:
        return _resources_of(self.cpu, self.memory, self.gpu, None, self.shared_memory, "Batch")

    @property
    def neuron_devices(self) -> int:
        """Inferentia or Trainium devices requested (the two names are aliases)."""
        return self.inferentia or self.trainium or 0


@dataclass(frozen=True, slots=True, repr=False)
class Local(Platform):
    """Run on this machine: in-process by default, or isolated in a child process.

    ``process=True`` gives the task its own process, where its memory limit is enforced and cpu/GPU visibility
    is set.

    Example:
        >>> import flytelike as fl
        >>> fl.Local(process=True).process
        True
    """

    name: ClassVar[str] = "local"

    process: bool | None = None

    def __post_init__(self) -> None:
        if self.process is not None:
            _bool(self.process, "Local.process")


PLATFORMS: dict[str, type[Platform]] = {p.name: p for p in (Kubernetes, Batch, Local)}
