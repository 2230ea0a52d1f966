"""Templates as AWS Batch requests: the exact job definition and SubmitJob bodies, job names, the EC2 and Fargate
rules checked before anything is submitted, ``[batch]`` settings and ``flytelike show --as batch``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import flytelike as fl
from flytelike._backends.batch import show_requests
from flytelike._backends.batch._spec import (
    SDK_DEFAULT_IMAGE_PREFIX,
    check_task,
    job_definition,
    job_name,
    memory_mib,
    submit_job,
)
from flytelike._cli._serialize import show
from flytelike._config import BatchSettings, load_settings
from flytelike._executor import ExecTask
from flytelike._serde._template import DEFAULT_IMAGE, task_template
from flytelike.errors import SpecError

SETTINGS = BatchSettings(queue="default-q", job_role="arn:aws:iam::1:role/job", execution_role="arn:aws:iam::1:role/x")


def exec_task(**options: Any) -> ExecTask:
    env_options = {k: options.pop(k) for k in ("image", "env_vars") if k in options}
    env = fl.TaskEnvironment(name="spec", **env_options)

    @env.task(**options)
    async def work(x: int) -> int:
        return x

    return ExecTask.from_template(task_template(work))


def test_the_job_definition_of_an_ec2_task_is_exact() -> None:
    task = exec_task(
        image="ghcr.io/acme/train:1.4",
        env_vars={"HF_HOME": "/cache"},
        resources=fl.Resources(cpu="1.5", memory="3Gi", gpu="A10G:1"),
        platform=fl.Batch(
            shared_memory=512,
            max_swap=2048,
            swappiness=30,
            use_tmpfs=True,
            tmpfs_size=256,
            efa=1,
            privileged=True,
            log_driver="awslogs",
            log_options=["awslogs-group:/fl/jobs", "awslogs-stream-prefix:fl"],
            iam_role="arn:aws:iam::1:role/own",
        ),
    )
    body = job_definition(task, SETTINGS, "EC2")
    name = body.pop("jobDefinitionName")
    assert body == {
        "type": "container",
        "platformCapabilities": ["EC2"],
        "containerProperties": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["flytelike-entry"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},  # whole vCPUs on EC2, rounded up
                {"type": "MEMORY", "value": "3072"},
                {"type": "GPU", "value": "1"},
            ],
            "environment": [{"name": "HF_HOME", "value": "/cache"}],
            "jobRoleArn": "arn:aws:iam::1:role/own",
            "executionRoleArn": "arn:aws:iam::1:role/x",
            "linuxParameters": {
                "sharedMemorySize": 512,
                "maxSwap": 2048,
                "swappiness": 30,
                "tmpfs": [{"containerPath": "/flytelike_tmp", "size": 256, "mountOptions": ["noatime"]}],
                "devices": [
                    {
                        "hostPath": "/dev/infiniband/uverbs0",
                        "containerPath": "/dev/infiniband/uverbs0",
                        "permissions": ["READ", "WRITE", "MKNOD"],
                    }
                ],
            },
            "privileged": True,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/fl/jobs", "awslogs-stream-prefix": "fl"},
            },
        },
        "retryStrategy": {"attempts": 1},
        "propagateTags": True,
    }
    assert name.startswith("fl-")
    assert len(name) == 19


def test_job_definitions_are_named_by_their_spec() -> None:
    a = job_definition(exec_task(resources=fl.Resources(memory="1Gi")), SETTINGS, "EC2")
    again = job_definition(exec_task(resources=fl.Resources(memory="1Gi")), SETTINGS, "EC2")
    other = job_definition(exec_task(resources=fl.Resources(memory="2Gi")), SETTINGS, "EC2")
    assert a["jobDefinitionName"] == again["jobDefinitionName"] != other["jobDefinitionName"]
    # The image comes from [batch] image only when the environment names none (the SDK wrote its default).
    assert a["containerProperties"]["image"] == DEFAULT_IMAGE
    assert DEFAULT_IMAGE.startswith(SDK_DEFAULT_IMAGE_PREFIX)
    own = BatchSettings(queue="q", image="registry/mine:2")
    assert job_definition(exec_task(), own, "EC2")["containerProperties"]["image"] == "registry/mine:2"
    assert job_definition(exec_task(image="a/b:1"), own, "EC2")["containerProperties"]["image"] == "a/b:1"


def test_neuron_devices_come_from_the_accelerator_or_inferentia() -> None:
    task = exec_task(platform=fl.Batch(inferentia=2))
    devices = job_definition(task, SETTINGS, "EC2")["containerProperties"]["linuxParameters"]["devices"]
    assert [d["hostPath"] for d in devices] == ["/dev/neuron0", "/dev/neuron1"]
    assert all(d["permissions"] == ["READ", "WRITE"] for d in devices)
    requirements = job_definition(task, SETTINGS, "EC2")["containerProperties"]["resourceRequirements"]
    assert [r["type"] for r in requirements] == ["VCPU", "MEMORY"]  # Neuron chips are devices, not GPUs


def test_the_submit_job_body_of_an_attempt_is_exact() -> None:
    task = exec_task(
        env_vars={"MODE": "fast"},
        resources=fl.Resources(cpu="2", memory="4Gi"),
        timeout="90s",
        platform=fl.Batch(queue="gpu-q", tags={"team": "ml", "flytelike.io/run": "mine"}),
    )
    body = submit_job(
        task,
        SETTINGS,
        "EC2",
        name="fl-r1-0_1-2",
        definition="arn:aws:batch:us-east-1:1:job-definition/fl-abc:3",
        command=["flytelike-entry", "--run", "r1"],
        environment={"MODE": "fast", "FLYTELIKE_STORE__URL": "s3://b/store"},
        memory=6 << 30,  # the attempt's memory after an out-of-memory failure, not the task's 4Gi
        tags={"flytelike.io/run": "r1", "flytelike.io/action": "0.1", "flytelike.io/attempt": "2"},
    )
    assert body == {
        "jobName": "fl-r1-0_1-2",
        "jobQueue": "gpu-q",
        "jobDefinition": "arn:aws:batch:us-east-1:1:job-definition/fl-abc:3",
        "containerOverrides": {
            "command": ["flytelike-entry", "--run", "r1"],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "6144"}],
            # MODE is set by the job definition already
            "environment": [{"name": "FLYTELIKE_STORE__URL", "value": "s3://b/store"}],
        },
        "tags": {"team": "ml", "flytelike.io/run": "r1", "flytelike.io/action": "0.1", "flytelike.io/attempt": "2"},
        "propagateTags": True,
        "timeout": {"attemptDurationSeconds": 90},
    }


def test_short_timeouts_become_batch_s_minimum() -> None:
    task = exec_task(timeout="5s")
    body = submit_job(task, SETTINGS, "EC2", name="n", definition="d", command=["x"], environment={}, memory=0, tags={})
    assert body["timeout"] == {"attemptDurationSeconds": 60}
    assert body["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "2048"},  # a task that names no memory gets Batch-sized defaults
    ]
    assert "timeout" not in submit_job(
        exec_task(), SETTINGS, "EC2", name="n", definition="d", command=["x"], environment={}, memory=0, tags={}
    )


@pytest.mark.parametrize(
    ("run", "action", "attempt", "expected"),
    [
        ("r20261201-101500-ab12cd", "0", 1, "fl-r20261201-101500-ab12cd-0-1"),
        ("train-3f2a1b", "0.12.3", 2, "fl-train-3f2a1b-0_12_3-2"),
    ],
)
def test_job_names(run: str, action: str, attempt: int, expected: str) -> None:
    assert job_name(run, action, attempt) == expected


def test_job_names_keep_batch_s_rules_when_runs_are_named_oddly() -> None:
    odd = job_name("my run/ä", "0.1", 1)
    assert odd.startswith("fl-my-run--")
    assert len(odd) <= 128
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in odd)
    long = job_name("x" * 200, "0.1", 1)
    assert len(long) == 128
    assert long != job_name("x" * 200, "0.1", 2)  # the digest of the whole keeps attempts apart


def test_fargate_definitions_have_exact_sizes_and_no_linux_parameters() -> None:
    task = exec_task(resources=fl.Resources(cpu="0.5", memory="2Gi", disk="40Gi"))
    body = job_definition(task, SETTINGS, "FARGATE")
    container = body["containerProperties"]
    assert body["platformCapabilities"] == ["FARGATE"]
    assert container["resourceRequirements"] == [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "2048"}]
    assert container["ephemeralStorage"] == {"sizeInGiB": 40}
    assert container["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}
    assert "linuxParameters" not in container
    assert "privileged" not in container


def test_escalated_memory_on_fargate_is_raised_to_the_next_size_fargate_offers() -> None:
    task = exec_task(resources=fl.Resources(cpu="1", memory="2Gi"))
    assert memory_mib(task, 3 << 30, "FARGATE") == 3072
    assert memory_mib(task, (3 << 30) + 1, "FARGATE") == 4096
    with pytest.raises(SpecError, match=r"at most 8192Mi"):
        memory_mib(task, 9 << 30, "FARGATE")


@pytest.mark.parametrize(
    ("options", "field", "accepted"),
    [
        ({"resources": fl.Resources(cpu="3", memory="8Gi")}, "Resources.cpu", "0.25, 0.5, 1, 2, 4, 8, 16"),
        ({"resources": fl.Resources(cpu="1", memory="1Gi")}, "Resources.memory", "2048Mi, 3072Mi"),
        ({"resources": fl.Resources(cpu="1", gpu="T4:1")}, "Resources.gpu", "an EC2 queue"),
        ({"platform": fl.Batch(use_tmpfs=True)}, "Batch.use_tmpfs", "an EC2 queue"),
        ({"platform": fl.Batch(shared_memory=64)}, "Batch.shared_memory", "an EC2 queue"),
        ({"platform": fl.Batch(trainium=1)}, "Batch.inferentia", "an EC2 queue"),
        ({"platform": fl.Batch(privileged=True)}, "Batch.privileged", "an EC2 queue"),
        ({"resources": fl.Resources(disk="300Gi")}, "ephemeral storage", "21-200 GiB"),
    ],
)
def test_fargate_rules(options: dict[str, Any], field: str, accepted: str) -> None:
    task = exec_task(**options)
    with pytest.raises(SpecError) as caught:
        check_task(task, SETTINGS, "FARGATE")
    assert field in caught.value.field
    assert accepted in (caught.value.accepted or "")
    assert "task spec.work" in str(caught.value)


def test_fargate_needs_an_execution_role() -> None:
    with pytest.raises(SpecError, match="execution role") as caught:
        check_task(exec_task(), BatchSettings(queue="q"), "FARGATE")
    assert caught.value.field.endswith("Batch.execution_role")
    check_task(
        exec_task(platform=fl.Batch(execution_role="arn:aws:iam::1:role/e")), BatchSettings(queue="q"), "FARGATE"
    )


def test_ec2_rules_and_the_rules_of_both() -> None:
    with pytest.raises(SpecError, match="is for Fargate queues") as caught:
        check_task(exec_task(platform=fl.Batch(ephemeral_storage=30)), SETTINGS, "EC2")
    assert caught.value.field.endswith("Batch.ephemeral_storage")
    with pytest.raises(SpecError, match="no job queue") as no_queue:
        check_task(exec_task(), BatchSettings(), None)
    assert "FLYTELIKE_BATCH__QUEUE" in (no_queue.value.accepted or "")
    with pytest.raises(SpecError, match="NVIDIA GPUs and Neuron"):
        check_task(exec_task(resources=fl.Resources(gpu=fl.TPU("V5E", "2x2"))), SETTINGS, "EC2")
    # What EC2 takes: GPUs, tmpfs, swap, shared memory and devices.
    check_task(
        exec_task(resources=fl.Resources(gpu="A100:2"), platform=fl.Batch(use_tmpfs=True, max_swap=10, efa=2)),
        SETTINGS,
        "EC2",
    )


def test_batch_settings_are_checked_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = BatchSettings()
    assert (defaults.runnable_timeout, defaults.calls_per_second, defaults.entrypoint) == (
        1800.0,
        10.0,
        ("flytelike-entry",),
    )
    monkeypatch.setenv("FLYTELIKE_BATCH__QUEUE", "env-q")
    monkeypatch.setenv("FLYTELIKE_BATCH__RUNNABLE_TIMEOUT", "60")
    settings = load_settings()
    assert (settings.batch.queue, settings.batch.runnable_timeout) == ("env-q", 60.0)
    with pytest.raises(SpecError, match="poll_interval_max"):
        BatchSettings(poll_interval_min=5, poll_interval_max=1)
    with pytest.raises(SpecError, match="calls_per_second"):
        BatchSettings(calls_per_second=0)
    with pytest.raises(SpecError, match="endpoint_url"):
        BatchSettings(endpoint_url="localhost:5000")
    with pytest.raises(SpecError, match="entrypoint"):
        BatchSettings(entrypoint=())


def test_show_requests_match_what_an_attempt_sends() -> None:
    task = exec_task(resources=fl.Resources(cpu="2", memory="4Gi"), platform=fl.Batch(queue="q"))
    shown = show_requests(task, load_settings())
    assert shown["jobDefinition"] == job_definition(task, load_settings().batch, "EC2")
    submit = shown["submitJob"]
    assert submit["jobDefinition"] == shown["jobDefinition"]["jobDefinitionName"]
    assert submit["jobName"] == "fl-RUN-0-1"
    assert submit["containerOverrides"]["command"][:3] == ["flytelike-entry", "--run", "<run>"]


FLOW = """
import flytelike as fl

env = fl.TaskEnvironment(name="showb", image="ghcr.io/acme/x:1", resources=fl.Resources(cpu="2", memory="4Gi"))

@env.task(platform=fl.Batch(queue="gpu", shared_memory=256))
async def train(n: int) -> int:
    return n

@env.task(platform=fl.Batch(queue="f", ephemeral_storage=50, execution_role="arn:aws:iam::1:role/e"))
async def small(n: int) -> int:
    return n

@env.task
async def plain(n: int) -> int:
    return n
"""


def test_show_as_batch_prints_both_bodies(tmp_path: Path) -> None:
    flow = tmp_path / "show_batch_flow.py"
    flow.write_text(textwrap.dedent(FLOW))
    runner = CliRunner()
    result = runner.invoke(show, [str(flow), "train", "--as", "batch"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert set(shown) == {"jobDefinition", "submitJob"}
    assert shown["jobDefinition"]["containerProperties"]["linuxParameters"] == {"sharedMemorySize": 256}
    assert shown["submitJob"]["jobQueue"] == "gpu"
    yaml_out = runner.invoke(show, [str(flow), "train", "--as", "batch", "-o", "yaml"])
    assert yaml_out.exit_code == 0
    assert "jobDefinitionName: fl-" in yaml_out.output
    fargate = json.loads(runner.invoke(show, [str(flow), "small", "--as", "batch"]).output)
    assert fargate["jobDefinition"]["platformCapabilities"] == ["FARGATE"]
    assert fargate["jobDefinition"]["containerProperties"]["ephemeralStorage"] == {"sizeInGiB": 50}
    # A task without a queue, and no [batch] queue: the error names the setting.
    missing = runner.invoke(show, [str(flow), "plain", "--as", "batch"])
    assert missing.exit_code == 2
    assert "no job queue" in missing.output
    assert "[batch] queue" in missing.output
