"""What a Batch backend relies on besides running jobs: batched DescribeJobs, ListJobs by name, held RUNNABLE jobs
and compute-environment capacity, the default resources and the variables that point clients at the emulator."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import anyio
import botocore.exceptions
import pytest

from flytelike.testing import BatchEmulator
from flytelike.testing.batch import wait_for_job

PY = sys.executable
RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]


@pytest.fixture(scope="module")
def emulator() -> Iterator[BatchEmulator]:
    with BatchEmulator(transition_delay=0.0, max_vcpus=4) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def fresh(emulator: BatchEmulator) -> Iterator[None]:
    emulator.release()
    emulator.counters.reset()
    yield
    emulator.release()


@pytest.fixture
async def batch(emulator: BatchEmulator) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("batch", **emulator.client_kwargs()) as client:
        yield client


async def define(batch: Any, name: str, command: list[str], resources: list[dict[str, str]] = RESOURCES) -> None:
    container = {"image": "x", "command": command, "resourceRequirements": resources}
    await batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=container)


async def test_describe_jobs_takes_100_ids_in_one_call_and_no_more(emulator: BatchEmulator, batch: Any) -> None:
    await define(batch, "noop", ["true"])
    emulator.hold("SUBMITTED")
    ids = [
        (await batch.submit_job(jobName=f"many-{i}", jobQueue=emulator.queue, jobDefinition="noop"))["jobId"]
        for i in range(101)
    ]
    emulator.counters.reset()
    described = (await batch.describe_jobs(jobs=ids[:100]))["jobs"]
    assert sorted(job["jobId"] for job in described) == sorted(ids[:100])
    assert {job["status"] for job in described} == {"SUBMITTED"}
    assert emulator.counters["DescribeJobs"] == 1
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        await batch.describe_jobs(jobs=ids)
    assert raised.value.response["Error"]["Code"] == "ClientException"
    assert "at most 100" in raised.value.response["Error"]["Message"]
    assert (await batch.describe_jobs(jobs=["no-such-job"]))["jobs"] == []


async def test_list_jobs_finds_a_job_by_name(emulator: BatchEmulator, batch: Any) -> None:
    await define(batch, "named", ["true"])
    emulator.hold("RUNNABLE")
    names = ["fl-r1-a-1", "fl-r1-a-2", "fl-r1-b-1"]
    ids = {
        name: (await batch.submit_job(jobName=name, jobQueue=emulator.queue, jobDefinition="named"))["jobId"]
        for name in names
    }
    exact = await batch.list_jobs(jobQueue=emulator.queue, filters=[{"name": "JOB_NAME", "values": ["fl-r1-a-1"]}])
    assert [(s["jobId"], s["jobName"]) for s in exact["jobSummaryList"]] == [(ids["fl-r1-a-1"], "fl-r1-a-1")]
    prefix = await batch.list_jobs(jobQueue=emulator.queue, filters=[{"name": "JOB_NAME", "values": ["fl-r1-a*"]}])
    assert sorted(s["jobName"] for s in prefix["jobSummaryList"]) == ["fl-r1-a-1", "fl-r1-a-2"]
    # Without a status or a filter Batch lists RUNNING jobs only
    listed = await batch.list_jobs(jobQueue=emulator.queue)
    assert not set(ids.values()) & {s["jobId"] for s in listed["jobSummaryList"]}
    runnable = await batch.list_jobs(jobQueue=emulator.queue, jobStatus="RUNNABLE")
    assert set(ids.values()) <= {s["jobId"] for s in runnable["jobSummaryList"]}


async def test_a_held_job_stays_runnable_until_released(emulator: BatchEmulator, batch: Any) -> None:
    await define(batch, "held", ["true"])
    emulator.hold("RUNNABLE")
    job_id = (await batch.submit_job(jobName="held", jobQueue=emulator.queue, jobDefinition="held"))["jobId"]
    await wait_for_job(batch, job_id, "RUNNABLE")
    await anyio.sleep(0.3)
    assert (await batch.describe_jobs(jobs=[job_id]))["jobs"][0]["status"] == "RUNNABLE"
    emulator.release("RUNNABLE")
    assert (await wait_for_job(batch, job_id))["status"] == "SUCCEEDED"


async def test_jobs_wait_in_runnable_for_vcpus_of_the_compute_environment(
    emulator: BatchEmulator, batch: Any, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    wait = [PY, "-c", f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)"]
    await define(batch, "big", wait, [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "64"}])
    await define(batch, "small", ["true"])
    await define(batch, "huge", ["true"], [{"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "64"}])
    big = (await batch.submit_job(jobName="big", jobQueue=emulator.queue, jobDefinition="big"))["jobId"]
    await wait_for_job(batch, big, "RUNNING")
    small = (await batch.submit_job(jobName="small", jobQueue=emulator.queue, jobDefinition="small"))["jobId"]
    huge = (await batch.submit_job(jobName="huge", jobQueue=emulator.queue, jobDefinition="huge"))["jobId"]
    await anyio.sleep(0.3)
    waiting = {job["jobId"]: job for job in (await batch.describe_jobs(jobs=[small, huge]))["jobs"]}
    assert waiting[small]["status"] == "RUNNABLE"
    assert "statusReason" not in waiting[small]  # it fits once the big job is done
    assert waiting[huge]["status"] == "RUNNABLE"
    assert waiting[huge]["statusReason"].startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
    go.touch()
    assert (await wait_for_job(batch, small))["status"] == "SUCCEEDED"
    await batch.update_compute_environment(
        computeEnvironment=emulator.compute_environment, computeResources={"maxvCpus": 8}
    )
    try:
        assert (await wait_for_job(batch, huge))["status"] == "SUCCEEDED"
    finally:
        await batch.update_compute_environment(
            computeEnvironment=emulator.compute_environment, computeResources={"maxvCpus": 4}
        )


async def test_a_disabled_compute_environment_keeps_jobs_runnable(emulator: BatchEmulator, batch: Any) -> None:
    await define(batch, "paused", ["true"])
    await batch.update_compute_environment(computeEnvironment=emulator.compute_environment, state="DISABLED")
    try:
        job_id = (await batch.submit_job(jobName="paused", jobQueue=emulator.queue, jobDefinition="paused"))["jobId"]
        await wait_for_job(batch, job_id, "RUNNABLE")
        await anyio.sleep(0.3)
        assert (await batch.describe_jobs(jobs=[job_id]))["jobs"][0]["status"] == "RUNNABLE"
    finally:
        await batch.update_compute_environment(computeEnvironment=emulator.compute_environment, state="ENABLED")
    assert (await wait_for_job(batch, job_id))["status"] == "SUCCEEDED"


async def test_the_defaults_exist_and_the_environment_points_at_them(emulator: BatchEmulator, batch: Any) -> None:
    environments = (await batch.describe_compute_environments())["computeEnvironments"]
    kinds = {env["computeEnvironmentName"]: env["computeResources"]["type"] for env in environments}
    assert kinds == {emulator.compute_environment: "EC2", emulator.fargate_compute_environment: "FARGATE"}
    queues = (await batch.describe_job_queues())["jobQueues"]
    assert {q["jobQueueName"] for q in queues} == {emulator.queue, emulator.fargate_queue}
    env = emulator.environment()
    assert env["AWS_ENDPOINT_URL"] == env["FLYTELIKE_BATCH__ENDPOINT_URL"] == emulator.endpoint_url
    assert env["FLYTELIKE_STORE__ENDPOINT_URL"] == emulator.endpoint_url
    assert env["FLYTELIKE_BATCH__QUEUE"] == emulator.queue
    assert env["FLYTELIKE_STORE__URL"].startswith(f"s3://{emulator.bucket}/")
    assert env["AWS_DEFAULT_REGION"] == emulator.region
    session = aioboto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    async with session.client("s3", endpoint_url=env["FLYTELIKE_STORE__ENDPOINT_URL"]) as s3:
        await s3.put_object(Bucket=emulator.bucket, Key="store/hello", Body=b"hi")
        assert await (await s3.get_object(Bucket=emulator.bucket, Key="store/hello"))["Body"].read() == b"hi"
    assert (emulator.counters["PutObject"], emulator.counters["GetObject"]) == (1, 1)


async def test_a_fargate_job_runs_on_the_fargate_queue_only(emulator: BatchEmulator, batch: Any) -> None:
    container = {
        "image": "x",
        "command": ["true"],
        "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}],
    }
    await batch.register_job_definition(
        jobDefinitionName="serverless",
        type="container",
        containerProperties=container,
        platformCapabilities=["FARGATE"],
    )
    with pytest.raises(botocore.exceptions.ClientError, match="can not run Jobs with capability FARGATE"):
        await batch.submit_job(jobName="wrong", jobQueue=emulator.queue, jobDefinition="serverless")
    job_id = (await batch.submit_job(jobName="right", jobQueue=emulator.fargate_queue, jobDefinition="serverless"))[
        "jobId"
    ]
    assert (await wait_for_job(batch, job_id))["status"] == "SUCCEEDED"
    assert emulator.job(job_id).compute_environment == emulator.fargate_compute_environment


async def test_two_emulators_share_nothing(emulator: BatchEmulator, batch: Any) -> None:
    async with BatchEmulator() as other:
        assert other.account_id != emulator.account_id
        async with aioboto3.Session().client("batch", **other.client_kwargs()) as other_batch:
            names = {jd["jobDefinitionName"] for jd in (await other_batch.describe_job_definitions())["jobDefinitions"]}
    await define(batch, "mine", ["true"])
    assert "mine" not in names


async def test_moto_reset_is_refused(emulator: BatchEmulator, batch: Any) -> None:
    request = urllib.request.Request(f"{emulator.endpoint_url}/moto-api/reset", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        await anyio.to_thread.run_sync(urllib.request.urlopen, request)
    raised.value.close()
    assert raised.value.code == 400
    assert {q["jobQueueName"] for q in (await batch.describe_job_queues())["jobQueues"]} >= {emulator.queue}


def test_bad_settings_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="time_scale 0"):
        BatchEmulator(time_scale=0)
    with pytest.raises(ValueError, match="port 70000"):
        BatchEmulator(port=70000)
    with pytest.raises(ValueError, match="account_id '12'"):
        BatchEmulator(account_id="12")
    with pytest.raises(RuntimeError, match="not started"):
        _ = BatchEmulator().endpoint_url
