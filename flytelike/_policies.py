"""Execution policies: Cache, ReusePolicy, RetryPolicy, Timeout and Secret (durations parse in flytelike._durations).

Example:
    >>> import flytelike as fl
    >>> fl.Cache(ttl="1h").ttl
    datetime.timedelta(seconds=3600)
    >>> fl.RetryPolicy(3, backoff="10s").delay(2)
    datetime.timedelta(seconds=20)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from flytelike._durations import parse_duration
from flytelike._quantity import Quantity
from flytelike._retries import escalate_memory, retry_delay
from flytelike.errors import SpecError

__all__ = ["REUSE_OFF", "Cache", "RetryPolicy", "ReusePolicy", "Secret", "Timeout", "parse_duration"]


def _positive_int(value: object, field: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(field, value, "must be a whole number >= 1", accepted=example)
    return value


def _assign(obj: object, **values: object) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)


DurationLike = str | int | float | timedelta
CacheBehavior = Literal["auto", "override", "disable"]
_CACHE_BEHAVIORS = ("auto", "override", "disable")
REUSE_OFF: Final = "off"
"""``reusable="off"`` in an override: the task runs in a container of its own, not in the environment's replicas."""


@dataclass(frozen=True, slots=True, init=False)
class Cache:
    """Reuse a task's outputs for the same inputs and task version.

    Args:
        ttl: how long a cached result stays valid (``"1h"``, seconds, a timedelta); ``None`` keeps it forever.
        version: replaces the automatic version (a hash of the task's code and spec), so a change that does not
            alter results can keep the cache.
        ignored_inputs: input names left out of the cache key.
        enabled: ``False`` turns caching off, also overriding an environment's cache.
        behavior: ``"auto"`` (default) reuses a cached result; ``"override"`` always runs the task and overwrites
            the cached result (to refresh it); ``"disable"`` is ``enabled=False``.
        serialize: one computation per cache key at a time: concurrent actions (also of other runs sharing the
            same ``FLYTELIKE_HOME``) with the same key wait for the one computing it and get its result.
        salt: mixed into the cache key; changing it starts a fresh cache without touching the task's version.

    Example:
        >>> import flytelike as fl
        >>> fl.Cache(ttl=300, ignored_inputs=["verbose"]).ignored_inputs
        ('verbose',)
        >>> fl.Cache(behavior="override", serialize=True, salt="2024-06").behavior
        'override'
    """

    ttl: timedelta | None
    version: str | None
    ignored_inputs: tuple[str, ...]
    enabled: bool
    behavior: CacheBehavior
    serialize: bool
    salt: str

    def __init__(
        self,
        ttl: DurationLike | None = None,
        *,
        version: str | None = None,
        ignored_inputs: Iterable[str] = (),
        enabled: bool = True,
        behavior: CacheBehavior = "auto",
        serialize: bool = False,
        salt: str = "",
    ) -> None:
        _assign(
            self,
            ttl=ttl,
            version=version,
            ignored_inputs=ignored_inputs,
            enabled=enabled,
            behavior=behavior,
            serialize=serialize,
            salt=salt,
        )
        self._validate()

    def _validate(self) -> None:
        if self.ttl is not None:
            ttl = parse_duration(self.ttl, field="Cache.ttl")
            if not ttl:
                raise SpecError("Cache.ttl", self.ttl, "a zero TTL caches nothing", accepted="'1h', or enabled=False")
            object.__setattr__(self, "ttl", ttl)
        if self.version is not None and (not isinstance(self.version, str) or not self.version.strip()):
            raise SpecError("Cache.version", self.version, "must be a non-empty string", accepted="'v2'")
        given: object = self.ignored_inputs
        names = (given,) if isinstance(given, str) else given
        if not isinstance(names, Iterable) or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise SpecError(
                "Cache.ignored_inputs", self.ignored_inputs, "not a list of input names", accepted="['seed']"
            )
        object.__setattr__(self, "ignored_inputs", tuple(sorted(set(names))))
        if not isinstance(self.enabled, bool):
            raise SpecError("Cache.enabled", self.enabled, "must be True or False", accepted="True")
        if self.behavior not in _CACHE_BEHAVIORS:
            raise SpecError("Cache.behavior", self.behavior, "not a cache behavior", accepted="'auto', 'override'")
        if self.behavior == "disable":
            object.__setattr__(self, "enabled", False)
        elif not self.enabled:
            object.__setattr__(self, "behavior", "disable")
        if not isinstance(self.serialize, bool):
            raise SpecError("Cache.serialize", self.serialize, "must be True or False", accepted="True")
        if not isinstance(self.salt, str) or self.salt != self.salt.strip():
            raise SpecError("Cache.salt", self.salt, "must be a string without surrounding spaces", accepted="'v2'")

    @classmethod
    def of(cls, value: object, *, field: str = "cache") -> Cache | None:
        """Accept ``True``/``"auto"`` (cache forever), ``False``/``"disable"`` (off), a Cache, or ``None``."""
        if value is None or isinstance(value, Cache):
            return value
        if value is True or value == "auto":
            return cls()
        if value is False or value == "disable":
            return cls(enabled=False)
        if value == "override":
            return cls(behavior="override")
        raise SpecError(
            field, value, "not a cache setting", accepted="True, False, 'auto', 'override', 'disable', fl.Cache(...)"
        )


@dataclass(frozen=True, slots=True, init=False)
class ReusePolicy:
    """Keep warm replicas of an environment to run many tasks each, instead of one container per task.

    Args:
        replicas: a fixed count, or ``(min, max)`` for autoscaling.
        concurrency: tasks one replica runs at the same time.
        idle_ttl: how long an idle replica is kept (seconds, ``"5m"`` or a timedelta); ``None``: until the run ends.
        scaledown_ttl: the least time a replica lives once started before it may be scaled down, so that a burst
            of work does not start and stop replicas over and over; ``None``: no minimum.

    A task running in shared replicas runs with the replicas' resources, environment variables and secrets:
    ``task.override(...)`` changing those must also turn reuse off (``reusable="off"``).

    Example:
        >>> import flytelike as fl
        >>> fl.ReusePolicy(replicas=(1, 4), concurrency=3, idle_ttl=300).replicas
        (1, 4)
        >>> fl.ReusePolicy(2, scaledown_ttl="10m").scaledown_ttl
        datetime.timedelta(seconds=600)
    """

    replicas: int | tuple[int, int]
    concurrency: int
    idle_ttl: timedelta | None
    scaledown_ttl: timedelta | None

    def __init__(
        self,
        replicas: int | tuple[int, int] = 1,
        *,
        concurrency: int = 1,
        idle_ttl: DurationLike | None = None,
        scaledown_ttl: DurationLike | None = None,
    ) -> None:
        _assign(self, replicas=replicas, concurrency=concurrency, idle_ttl=idle_ttl, scaledown_ttl=scaledown_ttl)
        self._validate()

    def _validate(self) -> None:
        r: object = self.replicas
        if isinstance(r, list):
            r = tuple(r)
        if isinstance(r, tuple):
            if len(r) != 2:
                raise SpecError("ReusePolicy.replicas", self.replicas, "a range is (min, max)", accepted="(1, 4)")
            lo = _positive_int(r[0], "ReusePolicy.replicas", "(1, 4)")
            hi = _positive_int(r[1], "ReusePolicy.replicas", "(1, 4)")
            if lo > hi:
                raise SpecError("ReusePolicy.replicas", self.replicas, "min is larger than max", accepted="(1, 4)")
            object.__setattr__(self, "replicas", (lo, hi))
        else:
            _positive_int(r, "ReusePolicy.replicas", "2 or (1, 4)")
        _positive_int(self.concurrency, "ReusePolicy.concurrency", "3")
        if self.idle_ttl is not None:
            object.__setattr__(self, "idle_ttl", parse_duration(self.idle_ttl, field="ReusePolicy.idle_ttl"))
        if self.scaledown_ttl is not None:
            ttl = parse_duration(self.scaledown_ttl, field="ReusePolicy.scaledown_ttl")
            object.__setattr__(self, "scaledown_ttl", ttl)

    @classmethod
    def of(cls, value: object, *, field: str = "reusable") -> ReusePolicy | Literal["off"] | None:
        """Accept a ReusePolicy, ``"off"`` (no reuse, also overriding an environment's), or ``None`` (inherit)."""
        if value is None or isinstance(value, ReusePolicy) or value == REUSE_OFF:
            return value
        raise SpecError(
            field, value, "not a reuse setting", accepted="fl.ReusePolicy(replicas=2, concurrency=3) or 'off'"
        )

    @property
    def min_replicas(self) -> int:
        return self.replicas[0] if isinstance(self.replicas, tuple) else self.replicas

    @property
    def max_replicas(self) -> int:
        return self.replicas[1] if isinstance(self.replicas, tuple) else self.replicas


@dataclass(frozen=True, slots=True, init=False)
class RetryPolicy:
    """How often a failed task is tried again, how long to wait, and how memory grows after an out-of-memory kill.

    Args:
        count: retries after the first attempt (``0``: none).
        backoff: wait before the first retry; later waits multiply by ``backoff_multiplier`` up to ``max_backoff``.
        backoff_multiplier: growth of the wait per retry (``1`` keeps it constant).
        max_backoff: the longest wait.
        oom_memory_multiplier: after an out-of-memory failure, the next attempt's memory is the previous one
            times this factor (``None``: memory stays the same).
        oom_memory_limit: the most memory escalation may reach, a quantity string such as ``"64Gi"``.

    Example:
        >>> import flytelike as fl
        >>> fl.RetryPolicy(2, oom_memory_multiplier=2, oom_memory_limit="8Gi").oom_memory_limit
        Quantity('8Gi')
    """

    count: int
    backoff: timedelta
    backoff_multiplier: float
    max_backoff: timedelta
    oom_memory_multiplier: float | None
    oom_memory_limit: Quantity | None

    def __init__(
        self,
        count: int = 0,
        *,
        backoff: DurationLike = 0,
        backoff_multiplier: float = 2.0,
        max_backoff: DurationLike = "5m",
        oom_memory_multiplier: float | None = None,
        oom_memory_limit: str | Quantity | None = None,
    ) -> None:
        _assign(
            self,
            count=count,
            backoff=backoff,
            backoff_multiplier=backoff_multiplier,
            max_backoff=max_backoff,
            oom_memory_multiplier=oom_memory_multiplier,
            oom_memory_limit=oom_memory_limit,
        )
        self._validate()

    def _validate(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise SpecError("RetryPolicy.count", self.count, "must be a whole number >= 0", accepted="3")
        object.__setattr__(self, "backoff", parse_duration(self.backoff, field="RetryPolicy.backoff"))
        object.__setattr__(self, "max_backoff", parse_duration(self.max_backoff, field="RetryPolicy.max_backoff"))
        m = self.backoff_multiplier
        if isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m) or m < 1:
            raise SpecError("RetryPolicy.backoff_multiplier", m, "must be a number >= 1", accepted="2")
        object.__setattr__(self, "backoff_multiplier", float(m))
        f = self.oom_memory_multiplier
        if f is not None:
            if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or f <= 1:
                raise SpecError(
                    "RetryPolicy.oom_memory_multiplier",
                    f,
                    "memory must grow: a factor > 1",
                    accepted="1.5 or 2",
                )
            object.__setattr__(self, "oom_memory_multiplier", float(f))
        if self.oom_memory_limit is not None:
            if not isinstance(self.oom_memory_limit, Quantity | str):
                raise SpecError(
                    "RetryPolicy.oom_memory_limit",
                    self.oom_memory_limit,
                    "not a memory size",
                    accepted="'64Gi'",
                )
            q = (
                self.oom_memory_limit
                if isinstance(self.oom_memory_limit, Quantity)
                else Quantity.parse(self.oom_memory_limit, field="RetryPolicy.oom_memory_limit")
            )
            if q.value <= 0 or not q.is_integer:
                raise SpecError(
                    "RetryPolicy.oom_memory_limit", self.oom_memory_limit, "must be a positive whole byte count",
                    accepted="'64Gi'",
                )  # fmt: skip
            if f is None:
                raise SpecError(
                    "RetryPolicy.oom_memory_limit",
                    self.oom_memory_limit,
                    "a memory cap needs oom_memory_multiplier",
                    accepted="oom_memory_multiplier=2",
                )
            object.__setattr__(self, "oom_memory_limit", q)

    @classmethod
    def of(cls, value: object, *, field: str = "retries") -> RetryPolicy | None:
        """Accept an int (retry count), a RetryPolicy, or ``None``."""
        if value is None or isinstance(value, RetryPolicy):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise SpecError(field, value, "must be a whole number >= 0", accepted="3")
            return cls(value)
        raise SpecError(field, value, "not a retry setting", accepted="3 or fl.RetryPolicy(3, backoff='10s')")

    def delay(self, retry: int) -> timedelta:
        """The wait before retry number ``retry`` (1 for the first retry).

        Raises:
            SpecError: ``retry`` is negative.
        """
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise SpecError("RetryPolicy.delay(retry)", retry, "must be a whole number >= 0", accepted="1")
        seconds = retry_delay(
            retry,
            initial=self.backoff.total_seconds(),
            multiplier=self.backoff_multiplier,
            maximum=self.max_backoff.total_seconds(),
        )
        return min(timedelta(seconds=seconds), self.max_backoff) if seconds else timedelta(0)

    def escalate(self, memory: Quantity) -> Quantity:
        """The memory for the attempt after an out-of-memory failure at ``memory``."""
        if self.oom_memory_multiplier is None:
            return memory
        cap = self.oom_memory_limit.ceil_to(1) if self.oom_memory_limit is not None else None
        return Quantity.from_number(escalate_memory(memory.ceil_to(1), self.oom_memory_multiplier, cap), memory.format)


@dataclass(frozen=True, slots=True, init=False)
class Timeout:
    """How long a task may run (and, on remote platforms, wait in a queue) before it is cancelled.

    Args:
        max_runtime: the limit of one attempt; each retry gets it afresh.
        max_queued_time: how long an attempt may wait in a remote platform's queue.
        deadline: the limit of the whole action from its creation: waiting for capacity, every attempt and the
            waits between retries. When it passes, the action ends timed out, with no further retry.

    Example:
        >>> import flytelike as fl
        >>> fl.Timeout("2h").max_runtime
        datetime.timedelta(seconds=7200)
        >>> fl.Timeout("10m", deadline="1h").deadline
        datetime.timedelta(seconds=3600)
    """

    max_runtime: timedelta | None
    max_queued_time: timedelta | None
    deadline: timedelta | None

    def __init__(
        self,
        max_runtime: DurationLike | None = None,
        *,
        max_queued_time: DurationLike | None = None,
        deadline: DurationLike | None = None,
    ) -> None:
        _assign(self, max_runtime=max_runtime, max_queued_time=max_queued_time, deadline=deadline)
        self._validate()

    def _validate(self) -> None:
        if self.max_runtime is None and self.deadline is None:
            raise SpecError(
                "Timeout.max_runtime", None, "a timeout needs a limit", accepted="fl.Timeout('2h') or deadline='4h'"
            )
        if self.max_runtime is not None:
            runtime = parse_duration(self.max_runtime, field="Timeout.max_runtime")
            if not runtime:
                raise SpecError("Timeout.max_runtime", self.max_runtime, "a zero timeout never runs", accepted="'2h'")
            object.__setattr__(self, "max_runtime", runtime)
        if self.max_queued_time is not None:
            queued = parse_duration(self.max_queued_time, field="Timeout.max_queued_time")
            object.__setattr__(self, "max_queued_time", queued)
        if self.deadline is not None:
            deadline = parse_duration(self.deadline, field="Timeout.deadline")
            if not deadline:
                raise SpecError("Timeout.deadline", self.deadline, "a zero deadline never runs", accepted="'4h'")
            object.__setattr__(self, "deadline", deadline)

    @classmethod
    def of(cls, value: object, *, field: str = "timeout") -> Timeout | None:
        """Accept a Timeout, ``"2h"``, seconds or a timedelta (all meaning max_runtime), or ``None``."""
        if value is None or isinstance(value, Timeout):
            return value
        try:
            return cls(parse_duration(value, field=field))
        except SpecError as e:
            raise SpecError(field, value, e.problem, accepted=e.accepted) from None


_SECRET_KEY = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,252}"
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret the task receives at run time, as an environment variable (default) or a file.

    Args:
        key: the secret's name in the secret store.
        group: an optional namespace of keys (a Kubernetes Secret's name, an AWS secret's prefix).
        env_var: the variable to expose it as; defaults to the key upper-cased, ``-`` and ``.`` as ``_``.
        mount_path: expose it as a file at this absolute path instead of a variable.

    Example:
        >>> import flytelike as fl
        >>> fl.Secret("hf-token").env_var
        'HF_TOKEN'
    """

    key: str
    group: str | None = None
    env_var: str | None = None
    mount_path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not re.fullmatch(_SECRET_KEY, self.key):
            raise SpecError("Secret.key", self.key, "not a secret name", accepted="letters, digits, '.', '_', '-'")
        if self.group is not None and (not isinstance(self.group, str) or not re.fullmatch(_SECRET_KEY, self.group)):
            raise SpecError("Secret.group", self.group, "not a group name", accepted="letters, digits, '.', '_', '-'")
        if self.mount_path is not None:
            if not isinstance(self.mount_path, str) or not self.mount_path.startswith("/"):
                raise SpecError("Secret.mount_path", self.mount_path, "must be an absolute path", accepted="'/etc/x'")
            if self.env_var is not None:
                raise SpecError(
                    "Secret.env_var",
                    self.env_var,
                    "a secret is either a variable or a file, not both",
                    accepted="env_var=None with mount_path, or no mount_path",
                )
            return
        env = self.env_var if self.env_var is not None else re.sub(r"[.\-]", "_", self.key).upper()
        if not isinstance(env, str) or not re.fullmatch(_ENV_NAME, env):
            raise SpecError("Secret.env_var", env, "not an environment variable name", accepted="'HF_TOKEN'")
        object.__setattr__(self, "env_var", env)

    @classmethod
    def of(cls, value: object, *, field: str = "secrets") -> Secret:
        """Accept a Secret or a key string."""
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(value)
        raise SpecError(field, value, "not a secret", accepted="'hf-token' or fl.Secret('hf-token')")
