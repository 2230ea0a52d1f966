"""The Batch backend end to end against the Batch emulator (moto, with jobs run as local processes): the request
bodies on the wire, one job definition per spec, the job's environment, OOM escalation, RUNNABLE timeouts,
cancellation, throttling, and mixed local and Batch runs (a controller taking over: test_batch_resume.py)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from flytelike._backends._remote import RemoteServices
from flytelike._backends.batch import BatchBackend
from flytelike._config import Settings, load_settings
from flytelike._executor import ActionState
from flytelike._loader import load_file
from flytelike._runtime import Runtime
from flytelike.errors import CancelledError, SpecError, TaskFailedError
from flytelike.testing import BatchEmulator

TASKS = """
import asyncio
import os
import time

import flytelike as fl

env = fl.TaskEnvironment(
    name="{name}", resources=fl.Resources(cpu="1", memory="512Mi"), env_vars={{"MODE": "fast"}}, platform=fl.Batch()
)
here = fl.TaskEnvironment(name="{name}_local")


@env.task
async def hello(x: int) -> str:
    print("hello from batch", x)
    c = fl.ctx()
    keys = ("AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ATTEMPT", "AWS_BATCH_CE_NAME", "AWS_BATCH_JQ_NAME", "MODE")
    return "|".join([str(x), c.platform, *(c.env.get(k, "-") for k in keys)])


@env.task
async def square(x: int) -> int:
    return x * x


@env.task(resources=fl.Resources(memory="1Gi"))
async def square_big(x: int) -> int:
    return x * x


@here.task
async def local_double(x: int) -> int:
    return 2 * x


@here.task
async def mixed(n: int) -> list[int]:
    remote = await asyncio.gather(*(square(i) for i in range(n)))
    return [*remote, await local_double(n)]


@env.task
async def calls_local(x: int) -> int:
    return await local_double(x) + 1


@env.task(resources=fl.Resources(memory="256Mi"), retries=fl.RetryPolicy(1, oom_memory_multiplier=4))
async def hungry(mib: int) -> int:
    print("allocating", mib, "MiB in attempt", fl.ctx().attempt, flush=True)
    block = bytearray(mib << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(0.3)
    return fl.ctx().attempt


@env.task
async def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@env.task(timeout="30s")
async def capped(seconds: float) -> str:
    time.sleep(seconds)
    return "in time"


@env.task(resources=fl.Resources(cpu="64", memory="1Gi"))
async def too_big() -> int:
    return 1


@env.task
async def boom(x: int) -> int:
    raise ValueError(f"bad input {{x}}")
"""


@dataclass
class Batch:
    emulator: BatchEmulator
    settings: Settings
    module: ModuleType
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    watching: set[int] = field(default_factory=set)  # the backends whose requests are recorded

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        return [body for op, body in self.sent if op == operation]


def _settings(emulator: BatchEmulator, **batch: Any) -> Settings:
    return load_settings(
        store={"url": f"s3://{emulator.bucket}/store", "endpoint_url": emulator.endpoint_url},
        batch={
            "queue": emulator.queue,
            "endpoint_url": emulator.endpoint_url,
            "region": emulator.region,
            "entrypoint": [sys.executable, "-m", "flytelike.entry"],
            "poll_interval_min": 0.05,
            "poll_interval_max": 0.4,
            **batch,
        },
    )


@pytest.fixture
def batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Batch]:
    jobs_home = tmp_path / "jobs-home"
    job_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "FLYTELIKE_HOME": str(jobs_home),
        # The jobs import flytelike from where this test does (a checkout, not only the installed one).
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
    }
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'batch-demo'\n")
    name = f"batch_tasks_{os.getpid()}_{id(root):x}"
    (root / f"{name}.py").write_text(textwrap.dedent(TASKS.format(name=name)))
    with BatchEmulator(job_environment=job_env, transition_delay=0.02, time_scale=0.01, max_vcpus=16) as emulator:
        for key, value in emulator.environment().items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)
        module = load_file(root / f"{name}.py")
        try:
            yield Batch(emulator, _settings(emulator), module)
        finally:
            sys.modules.pop(module.__name__, None)
            if str(root) in sys.path:
                sys.path.remove(str(root))


def _record_bodies(backend: BatchBackend, sent: list[tuple[str, dict[str, Any]]]) -> None:
    """Keep the JSON body of every Batch request as it goes on the wire."""

    def before_send(request: Any, event_name: str = "", **_: Any) -> None:
        operation = event_name.rpartition(".")[2]
        sent.append((operation, json.loads(request.body or b"{}")))

    backend.calls.client("batch").meta.events.register("before-send.batch", before_send)


async def _start(b: Batch, rt: Runtime, task: Any, *args: Any, **inputs: Any) -> Any:
    backend = await rt.backend("batch")
    assert isinstance(backend, BatchBackend)
    if id(backend) not in b.watching:
        b.watching.add(id(backend))
        _record_bodies(backend, b.sent)
    return await rt.start(task, *args, **inputs)


async def _run(b: Batch, task: Any, *args: Any, settings: Settings | None = None, **inputs: Any) -> Any:
    async with Runtime(settings=settings or b.settings) as rt:
        handle = await _start(b, rt, task, *args, **inputs)
        states: list[tuple[str, str, str]] = []
        handle.run.subscribe(lambda e: states.append((e.action, e.state, e.reason)))
        try:
            result = await handle.result()
        except Exception as e:
            result = e
        return result, handle, states


@pytest.mark.slow
async def test_a_task_runs_as_a_batch_job_and_sees_the_batch_environment(batch: Batch) -> None:
    result, handle, states = await _run(batch, batch.module.hello, 7)
    x, platform, job_id, attempt, ce, queue, mode = result.split("|")
    assert (x, platform, mode) == ("7", "batch", "fast")
    assert (ce, queue, attempt) == (batch.emulator.compute_environment, batch.emulator.queue, "1")
    assert batch.emulator.job(job_id).status == "SUCCEEDED"
    action = handle.run.actions["0"]
    assert "hello from batch 7" in "".join(action.logs or ())
    seen = [s for a, s, _ in states if a == "0"]
    # Batch's states, in Batch's order (a poll may fall between two of them and see only the later one): running
    # only once the job runs, not when the attempt starts.
    order = ["queued", "waiting", "initializing", "running", "succeeded"]
    shown = [order.index(s) for s in seen if s in order]
    assert shown == sorted(shown)
    assert ActionState.RUNNING.value in seen
    assert seen[0] != ActionState.RUNNING.value
    assert seen[-1] == ActionState.SUCCEEDED.value

    [definition] = batch.bodies("RegisterJobDefinition")
    assert definition["jobDefinitionName"].startswith("fl-")
    assert definition["containerProperties"]["command"] == [sys.executable, "-m", "flytelike.entry"]
    assert definition["containerProperties"]["environment"] == [{"name": "MODE", "value": "fast"}]
    [submit] = batch.bodies("SubmitJob")
    run_id = handle.run.id
    assert submit["jobName"] == f"fl-{run_id}-0-1"
    assert submit["jobQueue"] == batch.emulator.queue
    assert submit["tags"] == {"flytelike.io/run": run_id, "flytelike.io/action": "0", "flytelike.io/attempt": "1"}
    overrides = submit["containerOverrides"]
    assert overrides["resourceRequirements"] == [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]
    command = overrides["command"]
    assert command[:3] == [sys.executable, "-m", "flytelike.entry"]
    assert command[command.index("--run") + 1] == run_id
    assert command[command.index("--platform") + 1] == "batch"
    env = {e["name"]: e["value"] for e in overrides["environment"]}
    assert env["FLYTELIKE_STORE__URL"] == f"s3://{batch.emulator.bucket}/store"
    assert "MODE" not in env  # the job definition has it
    # No ListJobs: only a resumed attempt looks for a job of its name (tests/test_batch_resume.py).
    assert batch.bodies("ListJobs") == []


@pytest.mark.slow
async def test_one_job_definition_per_spec_and_one_submit_per_attempt(batch: Batch) -> None:
    async with Runtime(settings=batch.settings) as rt:
        handles = [await _start(batch, rt, batch.module.square, i) for i in range(3)]
        handles.append(await _start(batch, rt, batch.module.square_big, 4))
        assert [await h.result() for h in handles] == [0, 1, 4, 16]
    assert len(batch.bodies("RegisterJobDefinition")) == 2
    assert len(batch.bodies("DescribeJobDefinitions")) == 2
    assert len(batch.bodies("SubmitJob")) == 4
    # Another controller finds the definitions by name and registers nothing.
    batch.sent.clear()
    result, _, _ = await _run(batch, batch.module.square, 5)
    assert result == 25
    assert batch.bodies("RegisterJobDefinition") == []
    assert [b["jobDefinitionName"] for b in batch.bodies("DescribeJobDefinitions")] == [
        batch.bodies("SubmitJob")[0]["jobDefinition"].rpartition("/")[2].partition(":")[0]
    ]


@pytest.mark.slow
async def test_a_failing_task_fails_with_its_own_error(batch: Batch) -> None:
    result, handle, _ = await _run(batch, batch.module.boom, 3)
    assert isinstance(result, TaskFailedError)
    assert "bad input 3" in str(result)
    assert handle.run.actions["0"].failure_kind == "user"


@pytest.mark.slow
async def test_out_of_memory_escalates_and_the_retry_succeeds(batch: Batch) -> None:
    result, handle, states = await _run(batch, batch.module.hungry, 400)
    assert result == 2
    memories = [b["containerOverrides"]["resourceRequirements"][1] for b in batch.bodies("SubmitJob")]
    assert memories == [{"type": "MEMORY", "value": "256"}, {"type": "MEMORY", "value": "1024"}]
    retry = [reason for a, s, reason in states if s == ActionState.RETRYING.value]
    assert len(retry) == 1
    assert "memory" in retry[0]
    # The killed attempt wrote no logs object: its output came from its CloudWatch Logs stream.
    logs = "".join(handle.run.actions["0"].logs or ())
    assert "allocating 400 MiB in attempt 1" in logs
    assert "allocating 400 MiB in attempt 2" in logs
    assert batch.emulator.counters["GetLogEvents"] >= 1


@pytest.mark.slow
async def test_a_job_runnable_too_long_fails_as_infra_naming_queue_and_request(batch: Batch) -> None:
    settings = _settings(batch.emulator, runnable_timeout=0.3)
    result, handle, states = await _run(batch, batch.module.too_big, settings=settings)
    assert isinstance(result, TaskFailedError)
    action = handle.run.actions["0"]
    assert action.failure_kind == "infra"
    assert batch.emulator.queue in (action.error or "")
    assert "VCPU=64" in (action.error or "")
    waiting = [reason for a, s, reason in states if s == ActionState.WAITING.value]
    assert waiting
    assert all(waiting)  # with Batch's reason (or ours when Batch gives none)
    # Every attempt's job was terminated, none is left to run later.
    submitted = len(batch.bodies("SubmitJob"))
    assert submitted == action.attempts
    assert len(batch.bodies("TerminateJob")) == submitted


@pytest.mark.slow
async def test_a_job_past_its_attempt_duration_times_out(batch: Batch) -> None:
    # The emulator runs time 100 times faster: the 60 s of attemptDurationSeconds pass in 0.6 s, long before the
    # task's own 30 s timeout, so Batch ends the job.
    result, handle, _ = await _run(batch, batch.module.capped, 20.0)
    assert isinstance(result, TaskFailedError)
    [submit] = batch.bodies("SubmitJob")
    assert submit["timeout"] == {"attemptDurationSeconds": 60}
    action = handle.run.actions["0"]
    assert action.failure_kind == "timeout"
    assert action.state == ActionState.TIMED_OUT
    assert "attemptDurationSeconds" in (action.error or "")


@pytest.mark.slow
async def test_cancelling_a_run_terminates_its_job(batch: Batch) -> None:
    async with Runtime(settings=batch.settings) as rt:
        handle = await _start(batch, rt, batch.module.sleepy, 60.0)
        with anyio.fail_after(20):
            while not batch.bodies("SubmitJob") or handle.run.actions["0"].state != ActionState.RUNNING:
                await anyio.sleep(0.05)
        handle.cancel()
        with pytest.raises(CancelledError):
            await handle.result()
    assert handle.run.actions["0"].state == ActionState.ABORTED
    [terminate] = batch.bodies("TerminateJob")
    assert terminate["reason"].startswith("flytelike: attempt cancelled")
    job = batch.emulator.job(terminate["jobId"])
    with anyio.fail_after(10):
        while not job.done:
            await anyio.sleep(0.05)
    assert job.status == "FAILED"


@pytest.mark.slow
async def test_throttling_and_server_errors_are_retried_and_nothing_is_submitted_twice(batch: Batch) -> None:
    batch.emulator.faults.throttle("*", rate=0.1)
    batch.emulator.faults.fail("SubmitJob", rate=0.1)  # a 500 may have been carried out: looked up before resent
    batch.emulator.faults.fail("DescribeJobs", rate=0.1)
    async with Runtime(settings=batch.settings) as rt:
        handles = [await _start(batch, rt, batch.module.square, i) for i in range(6)]
        assert [await h.result() for h in handles] == [i * i for i in range(6)]
    assert sum(batch.emulator.counters.faults.values()) > 0
    names = [b["jobName"] for b in batch.bodies("SubmitJob")]
    jobs = batch.emulator.counters["SubmitJob"] - batch.emulator.counters.faults.get("SubmitJob", 0)
    assert jobs == 6
    assert len(set(names)) == 6


@pytest.mark.slow
async def test_a_mixed_run_keeps_local_tasks_here(batch: Batch) -> None:
    result, handle, _ = await _run(batch, batch.module.mixed, 3)
    assert result == [0, 1, 4, 6]
    platforms = {a.id: a.platform for a in handle.run.actions.values()}
    assert platforms["0"] == "local"
    assert sorted(a for a, p in platforms.items() if p == "batch") == ["0.0", "0.1", "0.2"]
    assert len(batch.bodies("SubmitJob")) == 3


@pytest.mark.slow
async def test_a_batch_task_calls_a_local_task_through_the_controller(batch: Batch) -> None:
    result, handle, _ = await _run(batch, batch.module.calls_local, 5)
    assert result == 11
    assert handle.run.actions["0.0"].platform == "local"
    assert len(batch.bodies("SubmitJob")) == 1


@pytest.mark.slow
async def test_describe_jobs_asks_for_100_jobs_a_call(batch: Batch) -> None:
    settings = _settings(batch.emulator, calls_per_second=1000)
    batch.emulator.hold("SUBMITTED")  # nothing runs: only the poll is measured
    async with BatchBackend(_remote(settings), settings.batch) as backend:
        _record_bodies(backend, batch.sent)
        definition = await backend.calls.call(
            "batch",
            "RegisterJobDefinition",
            {
                "jobDefinitionName": "poll-test",
                "type": "container",
                "containerProperties": {
                    "image": "busybox",
                    "command": ["true"],
                    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
                },
            },
        )
        ids: list[str] = []

        async def submit(i: int) -> None:
            answer = await backend.calls.call(
                "batch",
                "SubmitJob",
                {
                    "jobName": f"poll-{i}",
                    "jobQueue": batch.emulator.queue,
                    "jobDefinition": definition["jobDefinitionArn"],
                },
            )
            ids.append(answer["jobId"])

        async with anyio.create_task_group() as tg:
            for i in range(250):
                tg.start_soon(submit, i)
        watched = [backend.poller.watch(job_id) for job_id in ids]
        batch.sent.clear()
        assert await backend.poller.poll() is True
        calls = batch.bodies("DescribeJobs")
        assert sorted(len(c["jobs"]) for c in calls) == [50, 100, 100]
        assert sorted(j for c in calls for j in c["jobs"]) == sorted(ids)
        assert all(w.job is not None and w.job["status"] == "SUBMITTED" for w in watched)
    batch.emulator.release()


def _remote(settings: Settings) -> RemoteServices:
    class NoCode:  # the poll needs no task's code
        def code_file(self, task: Any) -> None:
            return None

    return RemoteServices(settings, NoCode())  # type: ignore[arg-type]


PLAIN = """
import flytelike as fl

env = fl.TaskEnvironment(name="{name}")


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def main(x: int) -> int:
    return await square(x) + 1
"""


@pytest.mark.slow
async def test_flytelike_run_with_batch_sends_tasks_without_a_platform_to_batch(batch: Batch, tmp_path: Path) -> None:
    flow = tmp_path / "project" / "plain_flow.py"
    flow.write_text(textwrap.dedent(PLAIN.format(name=f"plain_{os.getpid()}")))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLYTELIKE_")},
        **batch.emulator.environment(),
        "FLYTELIKE_HOME": str(tmp_path / "cli-home"),
        "FLYTELIKE_BATCH__ENTRYPOINT": json.dumps([sys.executable, "-m", "flytelike.entry"]),
        "FLYTELIKE_BATCH__POLL_INTERVAL_MIN": "0.05",
        "FLYTELIKE_BATCH__POLL_INTERVAL_MAX": "0.4",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
    }
    command = [sys.executable, "-m", "flytelike", "run", "--with", "batch:memory=512", str(flow), "main", "--x", "4"]
    done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().splitlines()[-1] == "17"
    assert batch.emulator.counters["SubmitJob"] == 2  # main and square, each a job
    assert batch.emulator.counters["RegisterJobDefinition"] == 1  # the same container spec


FARGATE = """
import flytelike as fl

env = fl.TaskEnvironment(name="{name}", resources=fl.Resources(cpu="0.5", memory="1Gi"))


@env.task
async def small(x: int) -> int:
    return x + 1


@env.task(resources=fl.Resources(gpu="T4:1"))
async def wants_gpu(x: int) -> int:
    return x
"""


@pytest.mark.slow
async def test_fargate_queues_get_fargate_jobs_and_refuse_what_fargate_lacks(batch: Batch, tmp_path: Path) -> None:
    flow = tmp_path / "project" / "fargate_flow.py"
    flow.write_text(textwrap.dedent(FARGATE.format(name=f"fargate_{os.getpid()}")))
    module = load_file(flow)
    settings = _settings(
        batch.emulator, queue=batch.emulator.fargate_queue, execution_role="arn:aws:iam::123456789012:role/exec"
    )
    try:
        async with Runtime(settings=settings, platform="batch") as rt:
            with pytest.raises(SpecError, match="is not available on Fargate") as refused:
                await _start(batch, rt, module.wants_gpu, 1)
            assert refused.value.field.endswith("Resources.gpu")
            assert batch.bodies("SubmitJob") == []  # refused before anything was sent
            handle = await _start(batch, rt, module.small, 1)
            assert await handle.result() == 2
    finally:
        sys.modules.pop(module.__name__, None)
    [definition] = batch.bodies("RegisterJobDefinition")
    assert definition["platformCapabilities"] == ["FARGATE"]
    assert definition["containerProperties"]["executionRoleArn"] == "arn:aws:iam::123456789012:role/exec"
    [submit] = batch.bodies("SubmitJob")
    assert submit["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "0.5"},
        {"type": "MEMORY", "value": "1024"},
    ]
