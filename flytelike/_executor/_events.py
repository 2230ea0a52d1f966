"""Action transitions as events: what the progress view, ``runs show`` and a watch stream all read.

Every transition of an action is one :class:`Event` with a sequence number that counts up per run, so a reader
that has seen events up to ``seq`` asks for what came after it and misses nothing.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["Event", "FailureKind"]


class FailureKind(enum.StrEnum):
    """Why an attempt failed; it decides which retry budget applies (design: action states)."""

    USER = "user"  # the task's code raised: the task's own retries
    SYSTEM = "system"  # the platform failed the attempt (eviction, deleted, worker died): the system budget
    OOM = "oom"  # out of memory: retried with escalated memory when the retry policy says so
    TIMEOUT = "timeout"
    INFRA = "infra"  # could not be placed or launched (unschedulable, launch errors): the system budget


class Event(NamedTuple):
    """One transition of one action (a named tuple: a run makes several per action, so they must be cheap).

    Attributes:
        run_id: the run.
        seq: 1, 2, 3, ... per run, in the order transitions happened.
        action: the action id (``0``, ``0.3``).
        state: the new state's value (an ``ActionState`` value: ``queued``, ``running``, ...).
        attempt: the attempt the transition belongs to (0 before the first attempt starts).
        time: epoch seconds.
        kind: for a failure, its ``FailureKind`` value; else empty.
        reason: why, in a few words (the waiting reason, the error's first line); may be empty.
    """

    run_id: str
    seq: int
    action: str
    state: str
    attempt: int
    time: float
    kind: str = ""
    reason: str = ""
