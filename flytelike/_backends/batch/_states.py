"""What a DescribeJobs entry means for an attempt (design.md §4.6): the state table in one function.

=========================  ==============================================================================
Batch                      flytelike
=========================  ==============================================================================
SUBMITTED, PENDING         QUEUED
RUNNABLE                   WAITING, with ``statusReason``; INFRA failure after ``runnable_timeout``
STARTING                   INITIALIZING
RUNNING                    RUNNING
SUCCEEDED                  the outputs in the store (a success only with ``outputs.pb``)
FAILED, container reason   OOM (``oom_killed``: the store is read, the error is OutOfMemoryError)
``OutOfMemoryError...``
FAILED, ``Host EC2 ...``   SYSTEM (the instance went away: spot reclaim, scale-in)
FAILED, our TerminateJob   ABORTED
FAILED, attempt duration   TIMEOUT
FAILED, image not pulled   USER (the same image fails every attempt)
FAILED, other              the store says (``error.pb``); nothing there: SYSTEM
=========================  ==============================================================================
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from flytelike._executor import ActionState

__all__ = ["TERMINATE_PREFIX", "End", "PlatformFailure", "Seen", "platform_failure", "read_job"]

TERMINATE_PREFIX = "flytelike: "  # our TerminateJob reasons start with it, so a job we stopped is told apart
_STATE = {
    "SUBMITTED": ActionState.QUEUED,
    "PENDING": ActionState.QUEUED,
    "RUNNABLE": ActionState.WAITING,
    "STARTING": ActionState.INITIALIZING,
    "RUNNING": ActionState.RUNNING,
}


class End(enum.StrEnum):
    """How a job that ended is read."""

    SUCCEEDED = "succeeded"  # read the store
    OOM = "oom"  # read the store, killed for its memory
    FAILED = "failed"  # read the store (the task's error.pb, or a failure of the platform when there is none)
    HOST = "host"  # SYSTEM: the host went away
    ABORTED = "aborted"  # we terminated it
    TIMEOUT = "timeout"  # its attemptDurationSeconds passed
    IMAGE = "image"  # USER: its image could not be pulled


class Seen(NamedTuple):
    """One job as DescribeJobs shows it.

    Attributes:
        status: Batch's status.
        state: the action's state while the job is not done; None once it is.
        end: how to read it once it is done; None before.
        reason: ``statusReason`` and the container's ``reason``, as far as they say something.
        exit_code: the container's exit code, when it has one.
        log_stream: the CloudWatch Logs stream of its output, once it has one.
    """

    status: str
    state: ActionState | None
    end: End | None
    reason: str
    exit_code: int | None
    log_stream: str | None


def read_job(job: dict[str, Any]) -> Seen:
    """The meaning of a DescribeJobs ``jobs[]`` entry."""
    status = str(job.get("status", ""))
    container = job.get("container") or {}
    attempts = job.get("attempts") or []
    last = (attempts[-1].get("container") or {}) if attempts else {}
    status_reason = str(job.get("statusReason") or "")
    container_reason = str(container.get("reason") or last.get("reason") or "")
    reason = "; ".join(r for r in (status_reason, container_reason) if r)
    exit_code = container.get("exitCode", last.get("exitCode"))
    stream = container.get("logStreamName") or last.get("logStreamName")
    code = int(exit_code) if isinstance(exit_code, int) else None
    if status in _STATE:
        return Seen(status, _STATE[status], None, reason, code, stream)
    if status == "SUCCEEDED":
        end = End.SUCCEEDED
    elif container_reason.startswith("OutOfMemoryError"):
        end = End.OOM
    elif status_reason.startswith(TERMINATE_PREFIX):
        end = End.ABORTED
    elif status_reason.startswith("Host EC2") or container_reason.startswith("Host EC2"):
        end = End.HOST
    elif "attempt duration exceeded timeout" in status_reason.lower():
        end = End.TIMEOUT
    elif container_reason.startswith("CannotPullContainerError"):
        end = End.IMAGE
    else:
        end = End.FAILED
    return Seen(status, None, end, reason, code, stream)


class PlatformFailure(NamedTuple):
    """How an attempt fails when Batch, not the task, ended its job."""

    kind: str  # a FailureKind value
    retryable: bool
    what: str  # what happened, to follow the attempt's name in the message


_PLATFORM = {
    End.HOST: PlatformFailure("system", True, "lost its host"),
    End.TIMEOUT: PlatformFailure("timeout", True, "passed its attemptDurationSeconds"),
    End.IMAGE: PlatformFailure("user", False, "could not start"),
    # Not by this attempt's own cancellation, which never reads the job again: an abort from elsewhere (another
    # controller of the run), which a retry must not undo.
    End.ABORTED: PlatformFailure("user", False, "was terminated by flytelike"),
}


def platform_failure(seen: Seen) -> PlatformFailure | None:
    """The failure of a job Batch ended; None when the store tells how it ended (success, OOM, the task's error)."""
    return None if seen.end is None else _PLATFORM.get(seen.end)
