"""What a run is made of (:class:`RunInput`), separate from the run's machinery in ``_run``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flytelike._executor._model import Recovered, Resumed, RunRecord
from flytelike._executor._protocols import Backend, CacheStore

__all__ = ["RunInput"]


@dataclass(frozen=True, slots=True)
class RunInput:
    """What a run is made of.

    Attributes:
        record: the run's record (id, root task, platform).
        backends: the backend for a platform name (loaded on first use by the caller's loader).
        cache: the output cache.
        platform: where tasks without a platform of their own run.
        system_retries: attempts a SYSTEM or INFRA failure may cost an action beyond its own retries.
        record_outputs: keep each action's inputs digest and, once it succeeded, its outputs' bytes in its
            record, so that a later rerun can recover them (costs an encoding per action: off by default).
        recovery: succeeded actions of an earlier run, by action id: an action of this run with the same id,
            task identity and inputs takes their outputs instead of running (state RECOVERED).
    """

    record: RunRecord
    backends: Callable[[str], Backend]
    cache: CacheStore
    platform: str = "local"
    system_retries: int = 3
    record_outputs: bool = False
    recovery: Mapping[str, Recovered] | None = None
    resume: Mapping[str, Resumed] | None = None
    first_seq: int = 0
    abortable: bool = False
