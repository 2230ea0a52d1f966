"""AWS Batch job settings (:class:`Batch`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from flytelike._frozendict import FrozenDict
from flytelike._platforms._common import _AWS_TAG, Platform, _bool, _mapping, _nonneg_int, _resources_of, _str
from flytelike._resources import Resources
from flytelike.errors import SpecError

__all__ = ["Batch"]

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
