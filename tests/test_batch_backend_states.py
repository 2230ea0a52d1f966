"""The Batch state table (design.md §4.6) from DescribeJobs entries as Batch returns them, and the token bucket."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from flytelike._backends.batch._calls import TokenBucket
from flytelike._backends.batch._poller import JobPoller
from flytelike._backends.batch._states import End, platform_failure, read_job
from flytelike._executor import ActionState

STREAM = "fl-0123456789abcdef/default/6c1d3e0a9b0e4c5f8a3c2f5c8b0a1d2e"


def job(status: str, **fields: Any) -> dict[str, Any]:
    """A DescribeJobs ``jobs[]`` entry with the fields Batch always returns."""
    return {
        "jobArn": "arn:aws:batch:us-east-1:123456789012:job/6c1d3e0a-9b0e-4c5f-8a3c-2f5c8b0a1d2e",
        "jobName": "fl-r20261201-101500-ab12cd-0-1",
        "jobId": "6c1d3e0a-9b0e-4c5f-8a3c-2f5c8b0a1d2e",
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/flytelike",
        "status": status,
        "createdAt": 1764584100000,
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/fl-0123456789abcdef:1",
        "tags": {"flytelike.io/run": "r20261201-101500-ab12cd", "flytelike.io/action": "0"},
        "platformCapabilities": ["EC2"],
        **fields,
    }


def ended(status: str, status_reason: str, container: dict[str, Any]) -> dict[str, Any]:
    return job(
        status,
        statusReason=status_reason,
        startedAt=1764584110000,
        stoppedAt=1764584170000,
        attempts=[
            {
                "container": {"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/abc", **container},
                "startedAt": 1764584110000,
                "stoppedAt": 1764584170000,
                "statusReason": status_reason,
            }
        ],
        container={"image": "ghcr.io/acme/train:1.4", "vcpus": 2, "memory": 4096, **container},
    )


WAITING: list[tuple[str, str | None, ActionState]] = [
    ("SUBMITTED", None, ActionState.QUEUED),
    ("PENDING", None, ActionState.QUEUED),
    (
        "RUNNABLE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than "
        "that can be met by the CE(s) attached to the job queue.",
        ActionState.WAITING,
    ),
    (
        "RUNNABLE",
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - There is no Spot capacity available that meets the job "
        "requirements.",
        ActionState.WAITING,
    ),
    ("RUNNABLE", None, ActionState.WAITING),
    ("STARTING", None, ActionState.INITIALIZING),
    ("RUNNING", None, ActionState.RUNNING),
]


@pytest.mark.parametrize(("status", "reason", "state"), WAITING)
def test_states_of_jobs_that_have_not_ended(status: str, reason: str | None, state: ActionState) -> None:
    entry = job(status, **({"statusReason": reason} if reason else {}))
    seen = read_job(entry)
    assert seen.state is state
    assert seen.end is None
    assert seen.reason == (reason or "")
    assert platform_failure(seen) is None


ENDED: list[tuple[str, str, dict[str, Any], End]] = [
    # (status, statusReason, container fields, how it is read)
    ("SUCCEEDED", "Essential container in task exited", {"exitCode": 0, "logStreamName": STREAM}, End.SUCCEEDED),
    (
        "FAILED",
        "Essential container in task exited",
        {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage", "logStreamName": STREAM},
        End.OOM,
    ),
    ("FAILED", "Essential container in task exited", {"exitCode": 10, "logStreamName": STREAM}, End.FAILED),
    ("FAILED", "Host EC2 (instance i-0b22a22eec53b9321) terminated.", {"logStreamName": STREAM}, End.HOST),
    (
        "FAILED",
        "flytelike: attempt cancelled (fl-r20261201-101500-ab12cd-0-1)",
        {"exitCode": 143, "logStreamName": STREAM},
        End.ABORTED,
    ),
    ("FAILED", "Job attempt duration exceeded timeout", {"exitCode": 137, "logStreamName": STREAM}, End.TIMEOUT),
    (
        "FAILED",
        "Task failed to start",
        {"reason": "CannotPullContainerError: pull access denied for acme/nope, repository does not exist"},
        End.IMAGE,
    ),
    ("FAILED", "Terminated by the operator", {"exitCode": 143}, End.FAILED),
]


@pytest.mark.parametrize(("status", "status_reason", "container", "end"), ENDED)
def test_ends_of_jobs(status: str, status_reason: str, container: dict[str, Any], end: End) -> None:
    seen = read_job(ended(status, status_reason, container))
    assert seen.state is None
    assert seen.end is end
    assert status_reason in seen.reason
    assert seen.exit_code == container.get("exitCode")
    assert seen.log_stream == container.get("logStreamName")


def test_failures_batch_itself_decides() -> None:
    kinds = {
        end: platform_failure(read_job(ended(status, reason, container))) for status, reason, container, end in ENDED
    }
    # The store decides for these: success only with outputs.pb, the task's own error.pb, OOM with the peak.
    assert kinds[End.SUCCEEDED] is None
    assert kinds[End.OOM] is None
    assert kinds[End.FAILED] is None
    host, timeout, image, aborted = kinds[End.HOST], kinds[End.TIMEOUT], kinds[End.IMAGE], kinds[End.ABORTED]
    assert host is not None
    assert (host.kind, host.retryable) == ("system", True)
    assert timeout is not None
    assert timeout.kind == "timeout"
    assert image is not None
    assert (image.kind, image.retryable) == ("user", False)
    assert aborted is not None
    assert aborted.retryable is False


def test_the_container_reason_of_the_last_attempt_counts_when_the_job_has_no_container_entry() -> None:
    entry = ended("FAILED", "Essential container in task exited", {"exitCode": 137, "reason": "OutOfMemoryError: x"})
    del entry["container"]
    seen = read_job(entry)
    assert seen.end is End.OOM
    assert seen.exit_code == 137


async def test_the_token_bucket_holds_calls_to_its_rate() -> None:
    bucket = TokenBucket(20.0)  # a burst of 20, then 20 a second
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(bucket.take)
    elapsed = anyio.current_time() - start
    assert 0.45 <= elapsed < 1.5  # the 10 calls past the burst wait 0.5 s


async def test_a_burst_within_the_bucket_does_not_wait() -> None:
    bucket = TokenBucket(50.0)
    start = anyio.current_time()
    for _ in range(50):
        await bucket.take()
    assert anyio.current_time() - start < 0.1


class CannedBatch:
    """Answers DescribeJobs from a table of statuses, as the poll asks (the interval policy is under test here,
    the calls themselves in test_batch_backend_e2e.py)."""

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        self.calls: list[list[str]] = []

    async def call(self, service: str, operation: str, params: dict[str, Any], **_: Any) -> dict[str, Any]:
        assert (service, operation) == ("batch", "DescribeJobs")
        self.calls.append(list(params["jobs"]))
        return {"jobs": [job(self.statuses[i], jobId=i) for i in params["jobs"]]}


async def test_the_poll_interval_is_short_while_jobs_move_and_long_while_all_wait() -> None:
    canned = CannedBatch()
    poller = JobPoller(canned, minimum=1.0, maximum=16.0, on_error=lambda e: None)  # type: ignore[arg-type]
    for i in range(3):
        canned.statuses[f"j{i}"] = "RUNNABLE"
        poller.watch(f"j{i}")
    intervals = []
    for _ in range(5):
        poller.interval = poller._next_interval(await poller.poll())
        intervals.append(poller.interval)
    assert intervals == [1.0, 2.0, 4.0, 8.0, 16.0]  # first seen (a change), then all RUNNABLE: doubling
    canned.statuses["j0"] = "STARTING"
    poller.interval = poller._next_interval(await poller.poll())
    assert poller.interval == 1.0  # a job starts: fast again
    canned.statuses.update(j0="RUNNING", j1="RUNNING", j2="RUNNING")
    running = []
    for _ in range(6):
        poller.interval = poller._next_interval(await poller.poll())
        running.append(poller.interval)
    assert running[0] == 1.0  # they changed
    assert running[-1] == pytest.approx(16.0 / 3)  # only running: slower, but at most a third of the longest
    assert all(len(c) == 3 for c in canned.calls)
