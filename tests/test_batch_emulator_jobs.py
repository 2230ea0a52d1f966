"""The Batch emulator runs jobs as local processes, through every Batch state, as a Batch client sees them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import anyio
import pytest

from flytelike.testing import BatchEmulator
from flytelike.testing.batch import wait_for_job

PY = sys.executable


@pytest.fixture(scope="module")
def emulator() -> Iterator[BatchEmulator]:
    # time_scale: the 60 s minimum attempt duration (and the 30 s stop grace) pass 100 times faster
    with BatchEmulator(transition_delay=0.01, time_scale=0.01) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def fresh(emulator: BatchEmulator) -> Iterator[None]:
    emulator.release()
    emulator.faults.clear()
    emulator.counters.reset()
    yield
    emulator.release()


@pytest.fixture
async def clients(emulator: BatchEmulator) -> AsyncIterator[tuple[Any, Any]]:
    session = aioboto3.Session()
    async with (
        session.client("batch", **emulator.client_kwargs()) as batch,
        session.client("logs", **emulator.client_kwargs()) as logs,
    ):
        yield batch, logs


async def define(batch: Any, name: str, code: str, *, memory: int = 256, **extra: Any) -> None:
    container = {
        "image": "python:3.11",
        "command": [PY, "-c", code],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": str(memory)}],
        **extra,
    }
    await batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=container)


async def log_lines(logs: Any, stream: str) -> list[str]:
    events = await logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)
    return [event["message"] for event in events["events"]]


async def wait_for_file(path: Path) -> None:
    with anyio.fail_after(10):
        while not path.exists():
            await anyio.sleep(0.02)


async def test_a_job_goes_through_every_state_and_its_output_reaches_cloudwatch(
    emulator: BatchEmulator, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    batch, logs = clients
    go = tmp_path / "go"
    code = (
        f"import os, time\nprint('started', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\nprint('done')"
    )
    await define(batch, "states", code)
    held = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
    for status in held:
        emulator.hold(status)
    job_id = (await batch.submit_job(jobName="states-1", jobQueue=emulator.queue, jobDefinition="states"))["jobId"]
    for status in held:
        seen = await wait_for_job(batch, job_id, status)
        assert "startedAt" not in seen
        emulator.release(status)
    running = await wait_for_job(batch, job_id, "RUNNING")
    stream = f"states/default/{job_id}"
    assert running["container"]["logStreamName"] == stream
    assert running["startedAt"] >= running["createdAt"]
    assert running["attempts"] == []
    with anyio.fail_after(5):  # the output is in CloudWatch while the job still runs
        while "started" not in await log_lines(logs, stream):
            await anyio.sleep(0.05)
    go.touch()
    done = await wait_for_job(batch, job_id)
    assert done["status"] == "SUCCEEDED"
    assert done["statusReason"] == "Essential container in task exited"
    assert done["container"]["exitCode"] == 0
    assert done["stoppedAt"] >= done["startedAt"]
    [attempt] = done["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["logStreamName"] == stream
    assert (attempt["startedAt"], attempt["stoppedAt"]) == (done["startedAt"], done["stoppedAt"])
    assert await log_lines(logs, stream) == ["started", "done"]
    assert emulator.job(job_id).statuses == [*held, "RUNNING", "SUCCEEDED"]


async def test_a_failing_job_reports_its_exit_code(emulator: BatchEmulator, clients: tuple[Any, Any]) -> None:
    batch, logs = clients
    await define(batch, "fails", "import sys; print('bad input', file=sys.stderr); sys.exit(3)")
    job_id = (await batch.submit_job(jobName="fails", jobQueue=emulator.queue, jobDefinition="fails"))["jobId"]
    done = await wait_for_job(batch, job_id)
    assert (done["status"], done["container"]["exitCode"]) == ("FAILED", 3)
    assert done["statusReason"] == "Essential container in task exited"
    assert "reason" not in done["container"]
    assert done["attempts"][0]["container"]["exitCode"] == 3
    assert await log_lines(logs, f"fails/default/{job_id}") == ["bad input"]


async def test_past_its_memory_the_job_fails_with_out_of_memory(
    emulator: BatchEmulator, clients: tuple[Any, Any]
) -> None:
    batch, _ = clients
    grow = "import time\nchunks = []\nfor _ in range(200):\n    chunks.append(b'x' * 5_000_000)\n    time.sleep(0.005)"
    await define(batch, "hungry", grow, memory=64)
    job_id = (await batch.submit_job(jobName="hungry", jobQueue=emulator.queue, jobDefinition="hungry"))["jobId"]
    done = await wait_for_job(batch, job_id)
    assert done["status"] == "FAILED"
    assert done["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert done["container"]["exitCode"] == 137
    assert done["attempts"][0]["container"]["reason"].startswith("OutOfMemoryError")


async def test_the_memory_override_raises_the_limit(emulator: BatchEmulator, clients: tuple[Any, Any]) -> None:
    batch, _ = clients
    await define(batch, "roomy", "x = b'x' * 120_000_000", memory=64)
    overrides = {"resourceRequirements": [{"type": "MEMORY", "value": "1024"}]}
    job_id = (
        await batch.submit_job(
            jobName="roomy", jobQueue=emulator.queue, jobDefinition="roomy", containerOverrides=overrides
        )
    )["jobId"]
    done = await wait_for_job(batch, job_id)
    assert done["status"] == "SUCCEEDED"
    assert {"type": "MEMORY", "value": "1024"} in done["container"]["resourceRequirements"]


async def test_past_its_attempt_duration_the_job_is_stopped(emulator: BatchEmulator, clients: tuple[Any, Any]) -> None:
    batch, _ = clients
    await define(batch, "slow", "import time; time.sleep(60)")
    submitted = await batch.submit_job(
        jobName="slow", jobQueue=emulator.queue, jobDefinition="slow", timeout={"attemptDurationSeconds": 60}
    )
    done = await wait_for_job(batch, submitted["jobId"])
    assert done["status"] == "FAILED"
    assert done["statusReason"] == "Job attempt duration exceeded timeout"
    assert done["container"]["exitCode"] == 143  # SIGTERM, which Python does not catch
    assert 0.5 <= (done["stoppedAt"] - done["startedAt"]) / 1000 < 5


async def test_a_job_ignoring_sigterm_is_killed_after_the_grace_period(
    emulator: BatchEmulator, clients: tuple[Any, Any]
) -> None:
    batch, _ = clients
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    await define(batch, "stubborn", code)
    submitted = await batch.submit_job(
        jobName="stubborn", jobQueue=emulator.queue, jobDefinition="stubborn", timeout={"attemptDurationSeconds": 60}
    )
    done = await wait_for_job(batch, submitted["jobId"])
    assert (done["statusReason"], done["container"]["exitCode"]) == ("Job attempt duration exceeded timeout", 137)


async def test_terminate_job_kills_the_process(
    emulator: BatchEmulator, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    batch, _ = clients
    pid_file = tmp_path / "pid"
    await define(
        batch, "sleeper", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    job_id = (await batch.submit_job(jobName="sleeper", jobQueue=emulator.queue, jobDefinition="sleeper"))["jobId"]
    await wait_for_job(batch, job_id, "RUNNING")
    await wait_for_file(pid_file)
    pid = int(pid_file.read_text())
    await batch.terminate_job(jobId=job_id, reason="no longer needed")
    done = await wait_for_job(batch, job_id)
    assert (done["status"], done["statusReason"]) == ("FAILED", "no longer needed")
    assert done["isTerminated"] is True
    assert done["container"]["exitCode"] == 143
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_cancel_job_stops_a_job_that_has_not_started_and_leaves_a_running_one(
    emulator: BatchEmulator, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    batch, _ = clients
    go = tmp_path / "go"
    await define(batch, "waits", f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)")
    emulator.hold("RUNNABLE")
    waiting = (await batch.submit_job(jobName="waiting", jobQueue=emulator.queue, jobDefinition="waits"))["jobId"]
    await wait_for_job(batch, waiting, "RUNNABLE")
    await batch.cancel_job(jobId=waiting, reason="changed my mind")
    cancelled = await wait_for_job(batch, waiting)
    assert (cancelled["status"], cancelled["statusReason"]) == ("FAILED", "changed my mind")
    assert cancelled["isCancelled"] is True
    assert cancelled["attempts"] == []
    assert "startedAt" not in cancelled
    emulator.release()
    running = (await batch.submit_job(jobName="running", jobQueue=emulator.queue, jobDefinition="waits"))["jobId"]
    await wait_for_job(batch, running, "RUNNING")
    await batch.cancel_job(jobId=running, reason="too late")  # Batch: a started job is not cancelled
    await anyio.sleep(0.2)
    assert (await batch.describe_jobs(jobs=[running]))["jobs"][0]["status"] == "RUNNING"
    go.touch()
    assert (await wait_for_job(batch, running))["status"] == "SUCCEEDED"


async def test_the_job_sees_its_environment_and_nothing_of_this_process(
    emulator: BatchEmulator, clients: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, logs = clients
    monkeypatch.setenv("LEAKED_FROM_TEST", "1")
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    environment = [{"name": "FROM_DEFINITION", "value": "d"}, {"name": "BOTH", "value": "definition"}]
    await define(batch, "env", code, environment=environment)
    overrides = {"environment": [{"name": "BOTH", "value": "override"}]}
    job_id = (
        await batch.submit_job(
            jobName="env", jobQueue=emulator.queue, jobDefinition="env", containerOverrides=overrides
        )
    )["jobId"]
    assert (await wait_for_job(batch, job_id))["status"] == "SUCCEEDED"
    [line] = await log_lines(logs, f"env/default/{job_id}")
    seen = json.loads(line)
    assert seen["AWS_BATCH_JOB_ID"] == job_id
    assert seen["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert seen["AWS_BATCH_CE_NAME"] == emulator.compute_environment
    assert seen["AWS_BATCH_JQ_NAME"] == emulator.queue
    assert (seen["FROM_DEFINITION"], seen["BOTH"]) == ("d", "override")
    assert seen["AWS_ENDPOINT_URL"] == emulator.endpoint_url
    assert "LEAKED_FROM_TEST" not in seen


async def test_parameters_fill_the_command_and_the_command_override_wins(
    emulator: BatchEmulator, clients: tuple[Any, Any]
) -> None:
    batch, logs = clients
    container = {
        "image": "python:3.11",
        "command": [PY, "-c", "import sys; print(sys.argv[1:])", "Ref::first", "Ref::second"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
    }
    await batch.register_job_definition(
        jobDefinitionName="params", type="container", containerProperties=container, parameters={"second": "default"}
    )
    first = await batch.submit_job(
        jobName="params", jobQueue=emulator.queue, jobDefinition="params", parameters={"first": "given"}
    )
    second = await batch.submit_job(
        jobName="params",
        jobQueue=emulator.queue,
        jobDefinition="params",
        containerOverrides={"command": [PY, "-c", "print('overridden')"]},
    )
    for submitted in (first, second):
        assert (await wait_for_job(batch, submitted["jobId"]))["status"] == "SUCCEEDED"
    assert await log_lines(logs, f"params/default/{first['jobId']}") == ["['given', 'default']"]
    assert await log_lines(logs, f"params/default/{second['jobId']}") == ["overridden"]


async def test_a_missing_program_fails_the_job_with_the_reason(
    emulator: BatchEmulator, clients: tuple[Any, Any]
) -> None:
    batch, _ = clients
    container = {
        "image": "x",
        "command": ["/no/such/program"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
    }
    await batch.register_job_definition(jobDefinitionName="missing", type="container", containerProperties=container)
    job_id = (await batch.submit_job(jobName="missing", jobQueue=emulator.queue, jobDefinition="missing"))["jobId"]
    done = await wait_for_job(batch, job_id)
    assert done["status"] == "FAILED"
    assert done["container"]["reason"].startswith("CannotStartContainerError: /no/such/program")


async def test_a_job_waits_for_its_dependencies(emulator: BatchEmulator, clients: tuple[Any, Any]) -> None:
    batch, _ = clients
    await define(batch, "quick", "pass")
    await define(batch, "broken", "raise SystemExit(1)")
    broken = (await batch.submit_job(jobName="broken", jobQueue=emulator.queue, jobDefinition="broken"))["jobId"]
    after = await batch.submit_job(
        jobName="after", jobQueue=emulator.queue, jobDefinition="quick", dependsOn=[{"jobId": broken}]
    )
    done = await wait_for_job(batch, after["jobId"])
    assert (done["status"], done["statusReason"]) == ("FAILED", "Dependent Job failed")
    assert emulator.job(after["jobId"]).statuses == ["SUBMITTED", "PENDING", "FAILED"]
