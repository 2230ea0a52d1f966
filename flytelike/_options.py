"""The options a TaskEnvironment, a task and ``task.override`` may each set, and how the layers merge.

Every field defaults to ``None`` (unset), so merging is field by field: env defaults <- task options <-
``override(...)``. A falsy value that is not ``None`` (``retries=0``, ``gpu=0``) is a real setting and resets
the inherited one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from flytelike._frozendict import FrozenDict
from flytelike._platform_spec import parse_platform_spec
from flytelike._platforms import Platform
from flytelike._policies import Cache, RetryPolicy, ReusePolicy, Secret, Timeout
from flytelike._resources import Resources
from flytelike.errors import SpecError

__all__ = ["TaskOptions"]

# Patterns as text, compiled (and cached) by re on first use: most tasks set no env_vars or image.
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_IMAGE = r"[^\s]+"


def _resources(value: object, where: str) -> Resources | None:
    if value is None or isinstance(value, Resources):
        return value
    if isinstance(value, Mapping):
        try:
            return Resources(**value)
        except TypeError:
            raise SpecError(where, value, "unknown resource name", accepted="cpu, memory, gpu, disk, shm") from None
    raise SpecError(where, value, "not a Resources", accepted="fl.Resources(cpu=2, memory='4Gi')")


def _platform(value: object, where: str) -> Platform | None:
    if value is None or isinstance(value, Platform):
        return value
    if isinstance(value, str):
        return parse_platform_spec(value)
    raise SpecError(
        where,
        value,
        "not a platform",
        accepted="fl.Kubernetes(...), fl.Batch(...), fl.Local(...) or 'batch:queue=q'",
    )


def _env_vars(value: object, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(where, value, "must be a mapping of names to strings", accepted="{'HF_HOME': '/cache'}")
    for k, v in value.items():
        if not isinstance(k, str) or not re.fullmatch(_ENV_NAME, k):
            raise SpecError(f"{where} key", k, "not an environment variable name", accepted="'HF_HOME'")
        if not isinstance(v, str):
            raise SpecError(f"{where}[{k!r}]", v, "values must be strings", accepted=f"{k!r}: {str(v)!r}")
    return FrozenDict(value)


def _secrets(value: object, where: str) -> tuple[Secret, ...] | None:
    if value is None:
        return None
    items: Iterable[object] = (value,) if isinstance(value, str | Secret) else value  # type: ignore[assignment]
    if not isinstance(items, Iterable):
        raise SpecError(where, value, "not a list of secrets", accepted="[fl.Secret('hf-token')]")
    secrets = tuple(Secret.of(s, field=where) for s in items)
    targets = [s.env_var or s.mount_path for s in secrets]
    if len(set(targets)) != len(targets):
        raise SpecError(where, value, "two secrets expose the same variable or path", accepted="distinct env_var")
    return secrets


def _image(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(_IMAGE, value):
        raise SpecError(where, value, "not a container image reference", accepted="'ghcr.io/acme/train:1.4'")
    return value


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """One layer of task settings; ``None`` means "inherit"."""

    image: str | None = None
    resources: Resources | None = None
    platform: Platform | None = None
    retries: RetryPolicy | None = None
    timeout: Timeout | None = None
    cache: Cache | None = None
    env_vars: Mapping[str, str] | None = None
    secrets: tuple[Secret, ...] | None = None
    # "off" (REUSE_OFF) turns an inherited ReusePolicy off.
    reusable: ReusePolicy | Literal["off"] | None = None

    @classmethod
    def build(cls, owner: str, **values: Any) -> TaskOptions:
        """Validate raw keyword values; ``owner`` prefixes field names in errors (``"train"`` -> ``train.retries``)."""
        allowed = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - allowed):
            raise SpecError(f"{owner}", unknown[0], "unknown option", accepted=", ".join(sorted(allowed)))

        def w(name: str) -> str:
            return f"{owner}.{name}"

        return cls(
            image=_image(values.get("image"), w("image")),
            resources=_resources(values.get("resources"), w("resources")),
            platform=_platform(values.get("platform"), w("platform")),
            retries=RetryPolicy.of(values.get("retries"), field=w("retries")),
            timeout=Timeout.of(values.get("timeout"), field=w("timeout")),
            cache=Cache.of(values.get("cache"), field=w("cache")),
            env_vars=_env_vars(values.get("env_vars"), w("env_vars")),
            secrets=_secrets(values.get("secrets"), w("secrets")),
            reusable=ReusePolicy.of(values.get("reusable"), field=w("reusable")),
        )

    def merge(self, over: TaskOptions) -> TaskOptions:
        """``over`` on top of ``self``, field by field."""
        resources = self.resources.merge(over.resources) if self.resources is not None else over.resources
        platform = over.platform if over.platform is not None else self.platform
        if over.platform is not None and self.platform is not None and type(over.platform) is type(self.platform):
            platform = over.platform.overlay(self.platform)
        env_vars = over.env_vars if self.env_vars is None else FrozenDict({**self.env_vars, **(over.env_vars or {})})

        def pick(name: str) -> Any:
            value = getattr(over, name)
            return value if value is not None else getattr(self, name)

        return TaskOptions(
            image=pick("image"),
            resources=resources,
            platform=platform,
            retries=pick("retries"),
            timeout=pick("timeout"),
            cache=pick("cache"),
            env_vars=env_vars,
            secrets=pick("secrets"),
            reusable=pick("reusable"),
        )
