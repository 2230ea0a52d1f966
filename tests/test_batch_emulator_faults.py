"""Fault injection (throttling, server errors) per operation, settable while the emulator serves, and the
per-operation counters tests assert call budgets with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioboto3
import botocore.config
import botocore.exceptions
import pytest

from flytelike.testing import BatchEmulator
from flytelike.testing.batch import Faults

NO_RETRIES = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})
RETRIES = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 5})


@pytest.fixture(scope="module")
def emulator() -> Iterator[BatchEmulator]:
    with BatchEmulator(transition_delay=0.0) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def fresh(emulator: BatchEmulator) -> None:
    emulator.faults.clear()
    emulator.counters.reset()


@pytest.fixture
async def batch(emulator: BatchEmulator) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("batch", config=NO_RETRIES, **emulator.client_kwargs()) as client:
        yield client


async def error_of(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        await call(**kwargs)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


async def test_throttling_answers_429_too_many_requests(emulator: BatchEmulator, batch: Any) -> None:
    emulator.faults.throttle("DescribeJobs")
    assert await error_of(batch.describe_jobs, jobs=["x"]) == (429, "TooManyRequestsException")
    assert await error_of(batch.describe_jobs, jobs=["x"]) == (429, "TooManyRequestsException")
    assert (await batch.describe_job_queues())["jobQueues"]  # other operations are not touched
    emulator.faults.clear("DescribeJobs")  # settable at runtime
    assert (await batch.describe_jobs(jobs=["x"]))["jobs"] == []
    assert emulator.counters["DescribeJobs"] == 3
    assert emulator.counters.faults == {"DescribeJobs": 2}


async def test_server_errors_answer_500(emulator: BatchEmulator, batch: Any) -> None:
    emulator.faults.fail("ListJobs", times=1)
    assert await error_of(batch.list_jobs, jobQueue=emulator.queue) == (500, "ServerException")
    assert (await batch.list_jobs(jobQueue=emulator.queue))["jobSummaryList"] == []


@pytest.mark.slow  # the client's retries back off for a second or two
async def test_a_retrying_client_gets_through_and_every_attempt_is_counted(emulator: BatchEmulator) -> None:
    container = {"image": "x", "command": ["true"], "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    container["resourceRequirements"].append({"type": "MEMORY", "value": "64"})
    emulator.faults.throttle("RegisterJobDefinition", times=2)
    emulator.faults.fail("SubmitJob", times=1)
    async with aioboto3.Session().client("batch", config=RETRIES, **emulator.client_kwargs()) as batch:
        await batch.register_job_definition(
            jobDefinitionName="retried", type="container", containerProperties=container
        )
        await batch.submit_job(jobName="retried", jobQueue=emulator.queue, jobDefinition="retried")
        jobs = await batch.list_jobs(jobQueue=emulator.queue, filters=[{"name": "JOB_NAME", "values": ["retried"]}])
    assert (emulator.counters["RegisterJobDefinition"], emulator.counters["SubmitJob"]) == (3, 2)
    assert emulator.counters.total("RegisterJobDefinition", "SubmitJob") == 5
    assert len(jobs["jobSummaryList"]) == 1  # the failed attempt never reached moto


async def test_logs_and_s3_answer_in_their_own_wire_format(emulator: BatchEmulator) -> None:
    session = aioboto3.Session()
    kwargs = emulator.client_kwargs()
    emulator.faults.throttle("GetLogEvents")
    emulator.faults.throttle("PutObject")
    emulator.faults.fail("HeadObject")
    async with (
        session.client("logs", config=NO_RETRIES, **kwargs) as logs,
        session.client("s3", config=NO_RETRIES, **kwargs) as s3,
    ):
        assert await error_of(logs.get_log_events, logGroupName="/aws/batch/job", logStreamName="x") == (
            400,
            "ThrottlingException",
        )
        assert await error_of(s3.put_object, Bucket=emulator.bucket, Key="k", Body=b"") == (503, "SlowDown")
        assert (await error_of(s3.head_object, Bucket=emulator.bucket, Key="k"))[0] == 500
    assert emulator.counters.snapshot() == {"GetLogEvents": 1, "PutObject": 1, "HeadObject": 1}


async def test_every_operation_can_be_faulted_at_once(emulator: BatchEmulator, batch: Any) -> None:
    emulator.faults.throttle(rate=1.0)
    assert await error_of(batch.describe_job_queues) == (429, "TooManyRequestsException")
    assert await error_of(batch.describe_jobs, jobs=["x"]) == (429, "TooManyRequestsException")


def test_a_rate_fires_on_about_that_fraction_and_replays_with_its_seed() -> None:
    draws = []
    for _ in range(2):
        faults = Faults(seed=7)
        faults.fail("SubmitJob", rate=0.25)
        draws.append([faults.pick("SubmitJob") is not None for _ in range(2000)])
    assert draws[0] == draws[1]
    assert 400 < sum(draws[0]) < 600
    assert Faults().pick("SubmitJob") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": 1.5}, "rate 1.5 for 'X' is outside 0..1"), ({"times": 0}, "times 0 for 'X' must be a positive count")],
)
def test_bad_fault_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults().throttle("X", **kwargs)
