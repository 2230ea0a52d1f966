"""Per-operation request counters and fault injection of the Batch emulator, shared by the HTTP layer (which counts
and injects) and the tests (which set faults and assert call budgets), each from its own thread."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["ANY_OPERATION", "Counters", "FaultKind", "Faults", "Injected"]

ANY_OPERATION = "*"
"""The operation name that makes a fault apply to every operation."""

FaultKind = Literal["throttle", "error"]


class Counters(Mapping[str, int]):
    """Requests received, by operation (``SubmitJob``, ``DescribeJobs``, ``GetLogEvents``, ``PutObject`` ...).

    Every request that reaches the emulator is counted, including the ones answered with an injected fault and
    the client's own retries, so a test sees what a real service would have billed against its rate limits.
    ``faults`` counts the injected answers alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def __getitem__(self, operation: str) -> int:
        with self._lock:
            return self._counts[operation]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._counts))

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)

    @property
    def faults(self) -> dict[str, int]:
        """Requests answered with an injected fault, by operation."""
        with self._lock:
            return dict(self._faults)

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts now."""
        with self._lock:
            return dict(self._counts)

    def total(self, *operations: str) -> int:
        """The sum over ``operations``, or over every operation when none is named."""
        with self._lock:
            if not operations:
                return sum(self._counts.values())
            return sum(self._counts[name] for name in operations)

    def reset(self) -> None:
        """Start counting again from zero."""
        with self._lock:
            self._counts.clear()
            self._faults.clear()

    def record(self, operation: str, *, faulted: bool) -> None:
        with self._lock:
            self._counts[operation] += 1
            if faulted:
                self._faults[operation] += 1


@dataclass
class _Rule:
    kind: FaultKind
    operation: str
    rate: float
    remaining: int | None


@dataclass(frozen=True, slots=True)
class Injected:
    """The fault chosen for one request."""

    kind: FaultKind


class Faults:
    """Which requests get a throttling answer or a server error instead of moto's.

    A rule matches an operation by name (or every operation, ``"*"``) and fires on a fraction ``rate`` of its
    requests, drawn from a seeded generator so a failing test replays; ``times`` bounds how often it fires (then
    it is spent). Rules can be changed at any time while the emulator serves requests.

    Example:
        >>> faults = Faults(seed=1)
        >>> faults.throttle("DescribeJobs", times=2)
        >>> [faults.pick("DescribeJobs") for _ in range(3)]
        [Injected(kind='throttle'), Injected(kind='throttle'), None]
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._random = random.Random(seed)

    def throttle(self, operation: str = ANY_OPERATION, *, rate: float = 1.0, times: int | None = None) -> None:
        """Answer ``operation`` with the service's throttling error (Batch: HTTP 429 ``TooManyRequestsException``;
        CloudWatch Logs: ``ThrottlingException``; S3: 503 ``SlowDown``)."""
        self._add("throttle", operation, rate, times)

    def fail(self, operation: str = ANY_OPERATION, *, rate: float = 1.0, times: int | None = None) -> None:
        """Answer ``operation`` with an HTTP 500 server error (Batch: ``ServerException``)."""
        self._add("error", operation, rate, times)

    def clear(self, operation: str | None = None) -> None:
        """Remove every rule, or the rules of one operation."""
        with self._lock:
            self._rules = [r for r in self._rules if operation is not None and r.operation != operation]

    def pick(self, operation: str) -> Injected | None:
        """The fault for one request of ``operation``, or None to let moto answer it."""
        with self._lock:
            for rule in self._rules:
                if rule.operation not in (operation, ANY_OPERATION) or rule.remaining == 0:
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return Injected(rule.kind)
        return None

    def _add(self, kind: FaultKind, operation: str, rate: float, times: int | None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate!r} for {operation!r} is outside 0..1; give a fraction such as 0.25")
        if times is not None and times < 1:
            raise ValueError(f"fault times {times!r} for {operation!r} must be a positive count, or None for always")
        if not operation:
            raise ValueError(f"fault operation {operation!r} is empty; give a name such as 'DescribeJobs', or '*'")
        with self._lock:
            self._rules.append(_Rule(kind, operation, rate, times))
