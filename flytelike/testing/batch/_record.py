"""What the emulator knows of one job: its spec (fixed at submission) and its state (changed by the job runner's
thread, read by the HTTP threads that answer DescribeJobs and ListJobs).

Every change happens under the record's lock and every read takes a consistent snapshot, so a DescribeJobs never
sees a job that is FAILED without its reason or exit code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACTIVE_STATES", "STATES", "JobRecord", "JobSpec", "Transition", "now_ms"]

STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
ACTIVE_STATES = STATES[:5]
BEFORE_START = ("SUBMITTED", "PENDING", "RUNNABLE")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A submitted job, with its job definition and overrides already merged as Batch merges them.

    Attributes:
        job_id: the id SubmitJob returned.
        job_name: the name it was submitted with.
        job_arn: its ARN.
        job_definition: the job definition's name (the log stream is named after it).
        job_definition_arn: the ARN of the revision used.
        queue: the job queue's name.
        command: what runs, ``Ref::`` parameters substituted.
        environment: the container's variables (job definition, then overrides).
        vcpus: VCPU requested (recorded, and counted against the compute environment's maxvCpus).
        memory_mib: MEMORY requested, the enforced limit; None: no limit.
        gpus: GPU requested (recorded).
        attempt_duration: ``timeout.attemptDurationSeconds`` of the submission or the job definition.
        depends_on: ids of the jobs it waits for.
        platform: EC2 or FARGATE.
    """

    job_id: str
    job_name: str
    job_arn: str
    job_definition: str
    job_definition_arn: str
    queue: str
    command: tuple[str, ...]
    environment: Mapping[str, str]
    vcpus: float
    memory_mib: int | None
    gpus: int = 0
    attempt_duration: int | None = None
    depends_on: tuple[str, ...] = ()
    platform: str = "EC2"

    @property
    def log_stream(self) -> str:
        return f"{self.job_definition}/default/{self.job_id}"


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a job's status, with the time (ms since the epoch) it happened."""

    status: str
    at: int
    reason: str | None = None


@dataclass(eq=False)
class JobRecord:
    """The state DescribeJobs reports for one job."""

    spec: JobSpec
    status: str = "SUBMITTED"
    status_reason: str | None = None
    created_at: int = field(default_factory=now_ms)
    started_at: int | None = None
    stopped_at: int | None = None
    exit_code: int | None = None
    container_reason: str | None = None
    log_stream_name: str | None = None
    compute_environment: str | None = None
    task_arn: str | None = None
    is_cancelled: bool = False
    is_terminated: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    history: list[Transition] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.history.append(Transition("SUBMITTED", self.created_at))

    @property
    def done(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED")

    @property
    def statuses(self) -> list[str]:
        """Every status it went through, in order."""
        with self.lock:
            return [t.status for t in self.history]

    def move(self, status: str, *, reason: str | None = None, **changes: Any) -> None:
        """Go to ``status`` (setting the given fields first, so a reader never sees the status without them)."""
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)
            if reason is not None:
                self.status_reason = reason
            if status != self.status:
                self.status = status
                self.history.append(Transition(status, now_ms(), reason))

    def set_reason(self, reason: str | None) -> None:
        with self.lock:
            self.status_reason = reason

    def finish(
        self,
        status: str,
        reason: str,
        *,
        exit_code: int | None = None,
        container_reason: str | None = None,
        **changes: Any,
    ) -> None:
        """End the job; if it had started, its attempt is recorded as DescribeJobs' ``attempts`` lists it."""
        stopped = now_ms()
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)
            self.exit_code = exit_code
            self.container_reason = container_reason
            self.stopped_at = stopped
            self.status_reason = reason
            if self.started_at is not None:
                container: dict[str, Any] = {
                    "containerInstanceArn": self._container_instance_arn(),
                    "taskArn": self.task_arn,
                    "logStreamName": self.log_stream_name,
                    "networkInterfaces": [],
                }
                if exit_code is not None:
                    container["exitCode"] = exit_code
                if container_reason is not None:
                    container["reason"] = container_reason
                self.attempts.append(
                    {"container": container, "startedAt": self.started_at, "stoppedAt": stopped, "statusReason": reason}
                )
            self.status = status
            self.history.append(Transition(status, stopped, reason))

    def _container_instance_arn(self) -> str | None:
        if self.spec.platform == "FARGATE" or self.task_arn is None:
            return None
        return self.task_arn.replace(":task/", ":container-instance/")

    def details(self) -> dict[str, Any]:
        """The fields of DescribeJobs' ``jobs[]`` entry this record owns (moto supplies the rest)."""
        with self.lock:
            found: dict[str, Any] = {
                "status": self.status,
                "createdAt": self.created_at,
                "attempts": [dict(a, container=dict(a["container"])) for a in self.attempts],
                "isCancelled": self.is_cancelled,
                "isTerminated": self.is_terminated,
            }
            if self.status_reason is not None:
                found["statusReason"] = self.status_reason
            if self.started_at is not None:
                found["startedAt"] = self.started_at
            if self.stopped_at is not None:
                found["stoppedAt"] = self.stopped_at
            container: dict[str, Any] = {}
            if self.exit_code is not None:
                container["exitCode"] = self.exit_code
            if self.container_reason is not None:
                container["reason"] = self.container_reason
            if self.log_stream_name is not None:
                container["logStreamName"] = self.log_stream_name
            if self.task_arn is not None:
                container["taskArn"] = self.task_arn
                arn = self._container_instance_arn()
                if arn is not None:
                    container["containerInstanceArn"] = arn
            found["container"] = container
            return found

    def summary(self) -> dict[str, Any]:
        """ListJobs' ``jobSummaryList`` entry."""
        with self.lock:
            found: dict[str, Any] = {
                "jobId": self.spec.job_id,
                "jobArn": self.spec.job_arn,
                "jobName": self.spec.job_name,
                "createdAt": self.created_at,
                "status": self.status,
                "jobDefinition": self.spec.job_definition_arn,
            }
            if self.status_reason is not None:
                found["statusReason"] = self.status_reason
            if self.started_at is not None:
                found["startedAt"] = self.started_at
            if self.stopped_at is not None:
                found["stoppedAt"] = self.stopped_at
            if self.exit_code is not None or self.container_reason is not None:
                container: dict[str, Any] = {}
                if self.exit_code is not None:
                    container["exitCode"] = self.exit_code
                if self.container_reason is not None:
                    container["reason"] = self.container_reason
                found["container"] = container
            return found
