"""What the platform classes share: the base class and the validation helpers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, ClassVar

from flytelike._resources import Resources, cpu_amount, size_amount
from flytelike.errors import SpecError

__all__ = ["Platform"]

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
