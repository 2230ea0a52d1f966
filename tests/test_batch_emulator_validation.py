"""Requests Batch refuses and moto accepts are refused by the emulator, as ClientException (HTTP 400), with a
message naming the field, the value and what is accepted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioboto3
import botocore.exceptions
import pytest

from flytelike.testing import BatchEmulator
from flytelike.testing.batch._validation import (
    BatchClientError,
    check_container_overrides,
    check_job_definition,
    check_job_name,
    check_tags,
    check_timeout,
)

EC2 = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]


def definition(resources: Any = EC2, *, fargate: bool = False, **container: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "jobDefinitionName": "jd",
        "containerProperties": {"image": "x", "command": ["true"], "resourceRequirements": resources, **container},
    }
    if fargate:
        request["platformCapabilities"] = ["FARGATE"]
    return request


@pytest.mark.parametrize(
    ("resources", "fargate", "message"),
    [
        ([{"type": "CPU", "value": "1"}], False, "type 'CPU' is not valid; accepted types: VCPU, MEMORY, GPU"),
        ([{"type": "MEMORY", "value": 2048}, {"type": "VCPU", "value": "1"}], False, "must be a string"),
        ([{"type": "VCPU", "value": "0"}, {"type": "MEMORY", "value": "64"}], False, "VCPU value '0' is not valid"),
        ([{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "3"}], False, "MEMORY value '3' is not valid"),
        ([{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1.5"}], False, "give whole MiB, at least 4"),
        ([*EC2, {"type": "GPU", "value": "0.5"}], False, "GPU value '0.5' is not valid"),
        ([{"type": "MEMORY", "value": "64"}], False, "vCPU is not provided"),
        ([{"type": "VCPU", "value": "1"}], False, "Memory is not provided"),
        ([*EC2, {"type": "VCPU", "value": "2"}], False, "gives VCPU twice"),
        (
            [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "4000"}],
            True,
            "Fargate resource requirements (1.00 vCPU, 4000 MiB) not valid. MEMORY for 1 vCPU must be one of 2048,",
        ),
        ([{"type": "VCPU", "value": "3"}, {"type": "MEMORY", "value": "8192"}], True, "VCPU must be one of 0.25,"),
        ([*EC2, {"type": "GPU", "value": "1"}], True, "GPU resource requirement (1) is not supported"),
    ],
)
def test_resource_requirements(resources: Any, fargate: bool, message: str) -> None:
    with pytest.raises(BatchClientError) as raised:
        check_job_definition(definition(resources, fargate=fargate))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("resources", "fargate"),
    [
        (EC2, False),
        ([{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "4"}], False),
        ([*EC2, {"type": "GPU", "value": "4"}], False),
        ([{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}], True),
        ([{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "30720"}], True),
        ([{"type": "VCPU", "value": "16"}, {"type": "MEMORY", "value": "122880"}], True),
    ],
)
def test_accepted_resource_requirements(resources: Any, fargate: bool) -> None:
    check_job_definition(definition(resources, fargate=fargate))


@pytest.mark.parametrize(
    ("linux", "fargate", "message"),
    [
        ({"swappiness": 101, "maxSwap": 0}, False, "swappiness 101 is not valid: give a whole number from 0 to 100"),
        ({"maxSwap": -1}, False, "maxSwap -1 is not valid"),
        ({"sharedMemorySize": 0}, False, "sharedMemorySize 0 is not valid"),
        ({"tmpfs": [{"containerPath": "tmp", "size": 64}]}, False, "containerPath 'tmp' is not valid"),
        ({"tmpfs": [{"containerPath": "/tmp", "size": 0}]}, False, "tmpfs[0].size 0 is not valid"),
        ({"tmpfs": [{"containerPath": "/t", "size": 1, "mountOptions": ["bogus"]}]}, False, "'bogus' is not a tmpfs"),
        ({"devices": [{"containerPath": "/dev/x"}]}, False, "devices[0].hostPath None is required"),
        ({"devices": [{"hostPath": "/dev/x", "permissions": ["ALL"]}]}, False, "permissions 'ALL' is not valid"),
        ({"capabilities": {}}, False, "linuxParameters.capabilities is not a linux parameter"),
        (
            {"tmpfs": [{"containerPath": "/tmp", "size": 64}]},
            True,
            "tmpfs is not applicable to jobs that run on Fargate",
        ),
        ({"sharedMemorySize": 64}, True, "sharedMemorySize is not applicable to jobs that run on Fargate"),
    ],
)
def test_linux_parameters(linux: dict[str, Any], fargate: bool, message: str) -> None:
    resources = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
    with pytest.raises(BatchClientError) as raised:
        check_job_definition(definition(resources, fargate=fargate, linuxParameters=linux))
    assert message in str(raised.value)


def test_accepted_linux_parameters() -> None:
    linux = {
        "sharedMemorySize": 64,
        "maxSwap": 0,
        "swappiness": 0,
        "tmpfs": [{"containerPath": "/scratch", "size": 128, "mountOptions": ["noexec", "mode=1777"]}],
        "devices": [{"hostPath": "/dev/neuron0", "permissions": ["READ", "WRITE"]}],
        "initProcessEnabled": True,
    }
    check_job_definition(definition(linuxParameters=linux))


@pytest.mark.parametrize("name", ["", "-leading-hyphen", "has space", "dot.name", "x" * 129, 7])
def test_job_names(name: Any) -> None:
    with pytest.raises(BatchClientError, match="Job name should match valid pattern"):
        check_job_name(name)


@pytest.mark.parametrize("name", ["a", "fl-run-action-1", "A_b-9", "x" * 128])
def test_accepted_job_names(name: str) -> None:
    check_job_name(name)


def test_job_definition_names() -> None:
    with pytest.raises(BatchClientError, match="is not supported pattern"):
        check_job_definition({**definition(), "jobDefinitionName": "fl:1"})


@pytest.mark.parametrize("seconds", [59, 0, -1, 60.5, "60", True])
def test_attempt_duration_is_at_least_60_seconds(seconds: Any) -> None:
    with pytest.raises(BatchClientError, match="the minimum is 60 seconds"):
        check_timeout({"attemptDurationSeconds": seconds})
    check_timeout({"attemptDurationSeconds": 60})


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({f"k{i}": "v" for i in range(51)}, "at most 50 tags"),
        ({"": "v"}, "a key has 1 to 128 characters"),
        ({"k" * 129: "v"}, "a key has 1 to 128 characters"),
        ({"aws:owner": "me"}, "reserved for AWS use"),
        ({"k": "v" * 257}, "a value has 0 to 256 characters"),
    ],
)
def test_tags(tags: dict[str, str], message: str) -> None:
    with pytest.raises(BatchClientError, match=message):
        check_tags(tags)
    check_tags({f"k{i}": "v" for i in range(50)})


@pytest.mark.parametrize("size", [20, 201, "30", None])
def test_ephemeral_storage_is_21_to_200_gib(size: Any) -> None:
    fargate = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
    with pytest.raises(BatchClientError, match=f"sizeInGiB {size!r} is not valid: give whole GiB from 21 to 200"):
        check_job_definition(definition(fargate, fargate=True, ephemeralStorage={"sizeInGiB": size}))
    check_job_definition(definition(fargate, fargate=True, ephemeralStorage={"sizeInGiB": 200}))


def test_reserved_environment_names() -> None:
    with pytest.raises(BatchClientError, match="'AWS_BATCH_JOB_ID' is not valid"):
        check_job_definition(definition(environment=[{"name": "AWS_BATCH_JOB_ID", "value": "x"}]))


def test_overrides_are_checked_against_the_definition() -> None:
    container = {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
    overrides = {"resourceRequirements": [{"type": "MEMORY", "value": "1000"}]}
    with pytest.raises(BatchClientError, match=r"Fargate resource requirements \(1.00 vCPU, 1000 MiB\) not valid"):
        check_container_overrides(overrides, container, fargate=True)
    assert check_container_overrides(overrides, container, fargate=False) == {"VCPU": "1", "MEMORY": "1000"}
    with pytest.raises(BatchClientError, match="vcpus is not applicable for Fargate"):
        check_container_overrides({"vcpus": 2}, container, fargate=True)
    with pytest.raises(BatchClientError, match="command 'echo hi' must be a list of strings"):
        check_container_overrides({"command": "echo hi"}, container, fargate=False)


# Through the API: the same checks answer as Batch does


@pytest.fixture(scope="module")
def emulator() -> Iterator[BatchEmulator]:
    with BatchEmulator() as emulator:
        yield emulator


@pytest.fixture
async def batch(emulator: BatchEmulator) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("batch", **emulator.client_kwargs()) as client:
        yield client


async def refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        await call(**kwargs)
    response: dict[str, Any] = raised.value.response
    assert response["Error"]["Code"] == "ClientException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Message"].startswith("Error executing request, Exception : ")
    assert ", RequestId: " in response["Error"]["Message"]
    return response


async def test_register_job_definition_refuses_bad_memory(batch: Any) -> None:
    container = {
        "image": "x",
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2"}],
    }
    response = await refused(
        batch.register_job_definition, jobDefinitionName="bad", type="container", containerProperties=container
    )
    assert "MEMORY value '2' is not valid: give whole MiB, at least 4" in response["Error"]["Message"]
    assert (await batch.describe_job_definitions(jobDefinitionName="bad"))["jobDefinitions"] == []


async def test_submit_job_refuses_bad_names_timeouts_and_fargate_overrides(emulator: BatchEmulator, batch: Any) -> None:
    container = {
        "image": "x",
        "command": ["true"],
        "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}],
    }
    await batch.register_job_definition(
        jobDefinitionName="fg", type="container", containerProperties=container, platformCapabilities=["FARGATE"]
    )
    queue = emulator.fargate_queue
    await refused(batch.submit_job, jobName="bad name", jobQueue=queue, jobDefinition="fg")
    response = await refused(
        batch.submit_job, jobName="t", jobQueue=queue, jobDefinition="fg", timeout={"attemptDurationSeconds": 30}
    )
    assert "attemptDurationSeconds 30 is not valid" in response["Error"]["Message"]
    response = await refused(
        batch.submit_job,
        jobName="m",
        jobQueue=queue,
        jobDefinition="fg",
        containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "8192"}]},
    )
    assert "Fargate resource requirements (0.50 vCPU, 8192 MiB) not valid" in response["Error"]["Message"]
    await refused(batch.submit_job, jobName="q", jobQueue="no-such-queue", jobDefinition="fg")
    await refused(batch.submit_job, jobName="d", jobQueue=queue, jobDefinition="no-such-definition")
    listed = await batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["*"]}])
    assert listed["jobSummaryList"] == []
