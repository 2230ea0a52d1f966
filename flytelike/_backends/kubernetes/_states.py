"""What a pod's status means for its attempt: the rows of design.md §4.5's state table, from the pod's JSON alone.

:func:`observe` reads a pod as the API server returns it (camelCase JSON) and says where the attempt is (queued,
waiting with the scheduler's message, initializing, running, ended) or how it failed right now: a container
killed for its memory, whatever its exit code, is out of memory; a pod disrupted, evicted or shut down with its
node is a SYSTEM failure; a pod past ``activeDeadlineSeconds`` timed out; an image that can never be pulled or a
container that cannot be configured (a missing secret) is the task's own (USER) failure. ImagePullBackOff is
reported as waiting, and becomes a failure only after the backend's grace period.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Observation", "observe"]

State = Literal["queued", "waiting", "initializing", "running", "ended", "failed"]
FailureKind = Literal["user", "system", "timeout", "oom"]

_SYSTEM_REASONS = frozenset({"Evicted", "Shutdown", "NodeShutdown", "NodeLost", "Terminated", "Preempting"})
_USER_WAITING = frozenset(
    {"InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "ErrImageNeverPull"}
)
_PULL_WAITING = frozenset({"ImagePullBackOff", "ErrImagePull"})


@dataclass(frozen=True, slots=True)
class Observation:
    """Where an attempt is, as its pod shows it.

    Attributes:
        state: ``queued`` (not scheduled yet), ``waiting`` (unschedulable, or its image cannot be pulled yet),
            ``initializing`` (scheduled, containers starting), ``running``, ``ended`` (the container exited:
            read the attempt's outputs) or ``failed`` (``failure`` says how, at once).
        message: the platform's words (the scheduler's message, the kubelet's reason).
        failure: the kind of an immediate failure.
        exit_code: the task container's exit code, once it ended.
        pull_backoff: the image cannot be pulled for now (a failure after the grace period).
    """

    state: State
    message: str = ""
    failure: FailureKind | None = None
    exit_code: int | None = None
    pull_backoff: bool = False


def _statuses(status: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from status.get("initContainerStatuses") or ()
    yield from status.get("containerStatuses") or ()
    yield from status.get("ephemeralContainerStatuses") or ()


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == kind:
            found: Mapping[str, Any] = condition
            return found
    return None


def _terminated(container: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = container.get("state") or {}
    found: Mapping[str, Any] | None = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
    return found


def observe(pod: Mapping[str, Any], *, container: str = "task") -> Observation:
    """The attempt's state from its pod (see the module's docstring)."""
    status: Mapping[str, Any] = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    for c in _statuses(status):
        done = _terminated(c)
        if done is not None and done.get("reason") == "OOMKilled":
            where = f"container {c.get('name')} was killed for using more memory than its limit (OOMKilled)"
            return Observation("failed", where, "oom", done.get("exitCode"))
    disruption = _condition(status, "DisruptionTarget")
    if disruption is not None and disruption.get("status") == "True":
        text = disruption.get("message") or disruption.get("reason") or "the pod was disrupted"
        return Observation("failed", f"{disruption.get('reason') or 'DisruptionTarget'}: {text}", "system")
    if reason in _SYSTEM_REASONS:
        return Observation("failed", f"{reason}: {message}" if message else reason, "system")
    if reason == "DeadlineExceeded":
        return Observation("failed", message or "the pod ran past activeDeadlineSeconds", "timeout")
    if phase in ("Succeeded", "Failed"):
        code = None
        for c in status.get("containerStatuses") or ():
            if c.get("name") == container:
                done = _terminated(c)
                code = done.get("exitCode") if done is not None else None
        if code is None and phase == "Failed" and not status.get("containerStatuses"):
            return Observation("failed", message or reason or "the pod failed before its container started", "system")
        return Observation(
            "ended", reason or phase, exit_code=code if code is not None else (0 if phase == "Succeeded" else None)
        )
    for c in _statuses(status):
        waiting = (c.get("state") or {}).get("waiting") or {}
        why = waiting.get("reason") or ""
        text = waiting.get("message") or why
        if why in _USER_WAITING:
            return Observation("failed", f"container {c.get('name')}: {why}: {text}", "user")
        if why in _PULL_WAITING:
            return Observation("waiting", f"container {c.get('name')}: {why}: {text}", pull_backoff=True)
    if phase == "Running":
        return Observation("running")
    if phase == "Unknown":
        return Observation("waiting", message or "the pod's node stopped reporting (phase Unknown)")
    scheduled = _condition(status, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        if scheduled.get("reason") == "Unschedulable":
            return Observation("waiting", scheduled.get("message") or "Unschedulable")
        return Observation("queued", scheduled.get("message") or "")
    if (scheduled is not None and scheduled.get("status") == "True") or (pod.get("spec") or {}).get("nodeName"):
        return Observation("initializing")
    return Observation("queued")
