"""A Batch backend taking over attempts an earlier controller started (``AttemptInput.resumed``), on the emulator.

A resumed attempt looks for its job by name and follows the one it finds (running, or ended meanwhile) instead of
submitting it again; it submits only when there is none; an attempt that is not resumed never asks. A controller
that stops without ending its work is a backend that is :meth:`~BatchBackend.detach`-ed, then cancelled.

The backends are driven through their contract (no executor), each with its own remote services, as two
controller processes would be. So that a test takes seconds rather than tens of them, the jobs run a small
stand-in for ``flytelike-entry`` (``ENTRY``): it reads the attempt's inputs from the store, waits until the test
opens a gate, and writes the square of ``x`` as the attempt's outputs, where the entrypoint would run ``square`` (a
negative ``x`` runs out of memory). The last test runs the real entrypoint, after a controller process is killed
with SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from flytelike._backends._remote import RemoteServices
from flytelike._backends.batch import BatchBackend
from flytelike._config import Settings, load_settings
from flytelike._executor import (
    ActionRecord,
    ActionState,
    AttemptInput,
    AttemptResult,
    Encoder,
    ExecTask,
    LogSink,
    TailOnly,
    Values,
)
from flytelike._invoke import Invoker, TaskIndex
from flytelike._loader import load_file
from flytelike._serde import decode_values, encode_values
from flytelike.errors import OutOfMemoryError
from flytelike.testing import BatchEmulator

# Every test runs Batch jobs as processes, and most of them two or three controllers in turn: seconds each.
pytestmark = pytest.mark.slow

RUN = "r-resume-0001"
_PATIENCE = 120.0  # seconds to wait for a job or a controller: a ceiling for a crowded machine, not a duration

TASKS = """
import time

import flytelike as fl

env = fl.TaskEnvironment(name="{name}", resources=fl.Resources(cpu="1", memory="256Mi"), platform=fl.Batch())


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def sleepy_square(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x * x
"""

# The job's command: what flytelike-entry does with the store, for `square`, in a fraction of its start-up time
# (boto3 alone would take most of a second to start: S3 requests are signed here, with the store's credentials).
ENTRY = """
import datetime
import hashlib
import hmac
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from flytelike._proto.core.v1 import literals_pb2

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))


def s3(method: str, url: str, body: bytes | None = None) -> bytes:
    target = os.environ["FLYTELIKE_STORE__ENDPOINT_URL"] + "/" + url.removeprefix("s3://")
    parts = urllib.parse.urlsplit(target)
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = day + "/" + os.environ.get("AWS_DEFAULT_REGION", "us-east-1") + "/s3/aws4_request"
    headers = {"host": parts.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": stamp}
    names = ";".join(sorted(headers))
    canonical = "\\n".join(
        [method, parts.path, "", *(k + ":" + headers[k] for k in sorted(headers)), "", names, "UNSIGNED-PAYLOAD"]
    )
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    text = "\\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        "AWS4-HMAC-SHA256 Credential=" + os.environ["AWS_ACCESS_KEY_ID"] + "/" + scope
        + ", SignedHeaders=" + names + ", Signature=" + signature
    )
    headers["Content-Type"] = "application/octet-stream"  # not urllib's form encoding, which a server would parse
    with urllib.request.urlopen(urllib.request.Request(target, body, headers, method=method)) as answer:
        return bytes(answer.read())


(Path(os.environ["STARTED"]) / os.environ["AWS_BATCH_JOB_ID"]).touch()
x = literals_pb2.LiteralMap.FromString(s3("GET", args["--inputs"])).literals["x"].int_value
while not Path(os.environ["GATE"]).exists():
    time.sleep(0.02)
if x < 0:  # past the job's MEMORY (256 MiB), as a task running out of memory
    block = bytearray(512 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
outputs = literals_pb2.LiteralMap(literals={"o0": literals_pb2.Literal(int_value=x * x)})
s3("PUT", args["--output-prefix"] + "/outputs.pb", outputs.SerializeToString())
"""


@dataclass
class Run:
    """Stands in for the run a controller took over: its id, its logs, and what its attempts reported."""

    id: str = RUN
    actions: dict[str, ActionRecord] = field(default_factory=dict)
    reports: list[ActionState] = field(default_factory=list)
    logs: LogSink = field(init=False)

    def __post_init__(self) -> None:
        self.logs = TailOnly(self.actions)

    def spawn(self, parent: ActionRecord, task: ExecTask, inputs: Values, *, action_id: str | None = None) -> Any:
        raise AssertionError("square calls no task")

    def call(
        self,
        parent: ActionRecord,
        task: ExecTask,
        inputs: Values | Mapping[str, Any],
        convert: Callable[[Values], Any] | None,
        *,
        encode: Encoder | None = None,
        action_id: str | None = None,
        group: str | None = None,
    ) -> Any:
        raise AssertionError("square calls no task")

    def report(self, action: ActionRecord, state: ActionState, reason: str = "") -> None:
        self.reports.append(state)

    async def durable(self) -> None:
        pass  # no controller records to wait for


@dataclass
class Aws:
    emulator: BatchEmulator
    settings: Settings
    index: TaskIndex
    invoker: Invoker
    tasks: dict[str, Any]
    gate: Path
    started: Path
    module_file: Path

    def attempt(self, name: str = "square", *, resumed: bool = False, **values: Any) -> AttemptInput:
        """Attempt 1 of action 0 of ``RUN``, as a controller builds it from the run's records."""
        task = self.index.exec_task(self.tasks[name])
        run = Run()
        record = run.actions["0"] = ActionRecord(RUN, "0", None, task.name, task.version)
        inputs = Values(data=encode_values(values, self.tasks[name].interface.inputs, where=name))
        return AttemptInput(run, record, task, inputs, 1, task.memory, resumed=resumed)

    def output(self, result: AttemptResult, name: str = "square") -> Any:
        return decode_values(result.outputs.data(), self.tasks[name].interface.outputs, where=name)["o0"]

    @contextlib.asynccontextmanager
    async def controller(self, settings: Settings | None = None) -> AsyncIterator[BatchBackend]:
        """A backend with remote services of its own, as a controller process has."""
        settings = settings or self.settings
        remote = RemoteServices(settings, self.invoker)
        try:
            async with BatchBackend(remote, settings.batch) as backend:
                yield backend
        finally:
            await remote.aclose()

    async def job_started(self, count: int = 1) -> list[str]:
        """The ids of the jobs whose command started, once ``count`` have."""
        with anyio.fail_after(_PATIENCE):
            while len(ids := sorted(p.name for p in self.started.iterdir())) < count:
                await anyio.sleep(0.02)
        return ids

    async def reached(self, job_id: str, *statuses: str) -> str:
        """The job's status once it is one of ``statuses`` (default: an end)."""
        with anyio.fail_after(_PATIENCE):
            while (status := self.emulator.job(job_id).status) not in (statuses or ("SUCCEEDED", "FAILED")):
                await anyio.sleep(0.02)
        return status


def _settings(emulator: BatchEmulator, home: Path, entrypoint: list[str]) -> Settings:
    return load_settings(
        home=home,
        store={"url": f"s3://{emulator.bucket}/store", "endpoint_url": emulator.endpoint_url},
        batch={
            "queue": emulator.queue,
            "endpoint_url": emulator.endpoint_url,
            "region": emulator.region,
            "entrypoint": entrypoint,
            "poll_interval_min": 0.05,
            "poll_interval_max": 0.2,
        },
    )


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    gate, started = tmp_path / "gate", tmp_path / "started"
    started.mkdir()
    job_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "FLYTELIKE_HOME": str(tmp_path / "jobs-home"),
        # The jobs import flytelike from where this test does (a checkout, not only the installed one).
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
        "GATE": str(gate),
        "STARTED": str(started),
    }
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'batch-resume'\n")
    name = f"batch_resume_tasks_{os.getpid()}_{id(root):x}"
    (root / f"{name}.py").write_text(textwrap.dedent(TASKS.format(name=name)))
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    with BatchEmulator(job_environment=job_env, transition_delay=0.02, time_scale=0.01) as emulator:
        for key, value in emulator.environment().items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)
        module = load_file(root / f"{name}.py")
        index = TaskIndex()
        env = module.env
        try:
            yield Aws(
                emulator,
                _settings(emulator, tmp_path / "home", [sys.executable, str(entry)]),
                index,
                Invoker(index),
                dict(env.tasks),
                gate,
                started,
                root / f"{name}.py",
            )
        finally:
            sys.modules.pop(module.__name__, None)
            if str(root) in sys.path:
                sys.path.remove(str(root))


async def _abandon(aws: Aws, attempt: AttemptInput) -> str:
    """Start ``attempt`` on a controller that then stops without ending its job; the id of the job left behind."""
    before = set(await aws.job_started(0))
    async with aws.controller() as first, anyio.create_task_group() as tg:
        tg.start_soon(first.run_attempt, attempt)
        [job_id] = set(await aws.job_started(len(before) + 1)) - before
        await aws.reached(job_id, "RUNNING")  # its command starts a moment before Batch says so
        first.detach()
        tg.cancel_scope.cancel()
    return job_id


async def test_a_job_left_running_is_followed_to_its_end_and_never_submitted_again(aws: Aws) -> None:
    job_id = await _abandon(aws, aws.attempt(x=7))
    # The first controller is gone; its job was left running, not terminated.
    assert aws.emulator.job(job_id).status == "RUNNING"
    assert aws.emulator.counters["TerminateJob"] == 0

    resumed = aws.attempt(x=7, resumed=True)
    async with aws.controller() as second, anyio.create_task_group() as tg:
        results: list[AttemptResult] = []

        async def run() -> None:
            results.append(await second.run_attempt(resumed))

        tg.start_soon(run)
        with anyio.fail_after(_PATIENCE):  # the second controller follows the job while it still runs
            while ActionState.RUNNING not in resumed.run.reports:  # type: ignore[attr-defined]
                await anyio.sleep(0.02)
        aws.gate.touch()
    assert aws.output(results[0]) == 49
    assert aws.emulator.counters["SubmitJob"] == 1
    assert second.calls.counts["SubmitJob"] == 0
    assert second.calls.counts["ListJobs"] == 1
    assert aws.emulator.job(job_id).status == "SUCCEEDED"
    assert await aws.job_started() == [job_id]  # one job ran the attempt, once


async def test_a_job_that_succeeded_meanwhile_costs_no_submit_and_its_outputs_are_read(aws: Aws) -> None:
    job_id = await _abandon(aws, aws.attempt(x=5))
    aws.gate.touch()
    assert await aws.reached(job_id) == "SUCCEEDED"  # it ended while no controller followed it

    async with aws.controller() as second:
        result = await second.run_attempt(aws.attempt(x=5, resumed=True))
    assert aws.output(result) == 25
    assert aws.emulator.counters["SubmitJob"] == 1
    # Nothing to submit, so no job definition either: the queue's type, the look-up by name, the poll.
    assert set(second.calls.counts) == {"DescribeJobQueues", "DescribeComputeEnvironments", "ListJobs", "DescribeJobs"}
    assert second.calls.counts["ListJobs"] == 1


async def test_a_job_killed_for_its_memory_meanwhile_fails_the_resumed_attempt_as_out_of_memory(aws: Aws) -> None:
    job_id = await _abandon(aws, aws.attempt(x=-1))
    aws.gate.touch()
    assert await aws.reached(job_id) == "FAILED"

    async with aws.controller() as second:
        with pytest.raises(OutOfMemoryError) as caught:
            await second.run_attempt(aws.attempt(x=-1, resumed=True))
    assert caught.value.action == "0"
    assert aws.emulator.counters["SubmitJob"] == 1


async def test_cancelling_a_resumed_attempt_terminates_the_job_it_follows(aws: Aws) -> None:
    job_id = await _abandon(aws, aws.attempt(x=8))
    resumed = aws.attempt(x=8, resumed=True)
    async with aws.controller() as second, anyio.create_task_group() as tg:
        tg.start_soon(second.run_attempt, resumed)
        with anyio.fail_after(_PATIENCE):
            while ActionState.RUNNING not in resumed.run.reports:  # type: ignore[attr-defined]
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert aws.emulator.counters["TerminateJob"] == 1
    assert await aws.reached(job_id) == "FAILED"
    assert aws.emulator.counters["SubmitJob"] == 1


async def test_a_resumed_attempt_without_a_job_submits_one(aws: Aws) -> None:
    aws.gate.touch()
    async with aws.controller() as backend:
        result = await backend.run_attempt(aws.attempt(x=3, resumed=True))
    assert aws.output(result) == 9
    assert aws.emulator.counters["ListJobs"] == 1
    assert aws.emulator.counters["SubmitJob"] == 1
    assert len(await aws.job_started()) == 1


async def test_an_attempt_not_resumed_never_looks_for_a_job(aws: Aws) -> None:
    aws.gate.touch()
    async with aws.controller() as backend:
        result = await backend.run_attempt(aws.attempt(x=4))
    assert aws.output(result) == 16
    assert aws.emulator.counters["SubmitJob"] == 1
    assert aws.emulator.counters["ListJobs"] == 0
    assert backend.calls.counts["ListJobs"] == 0


async def test_a_cancelled_attempt_of_a_backend_not_detached_still_terminates_its_job(aws: Aws) -> None:
    async with aws.controller() as backend, anyio.create_task_group() as tg:
        tg.start_soon(backend.run_attempt, aws.attempt(x=2))
        [job_id] = await aws.job_started()
        tg.cancel_scope.cancel()
    assert aws.emulator.counters["TerminateJob"] == 1
    assert await aws.reached(job_id) == "FAILED"


async def test_of_two_jobs_of_one_name_the_newest_is_followed_with_a_warning(
    aws: Aws, caplog: pytest.LogCaptureFixture
) -> None:
    # Two controllers that did not resume (the bug resuming prevents) each submitted the same attempt.
    older = await _abandon(aws, aws.attempt(x=6))
    newer = await _abandon(aws, aws.attempt(x=6))
    assert older != newer
    aws.gate.touch()
    with caplog.at_level(logging.WARNING, logger="flytelike.batch"):
        async with aws.controller() as third:
            result = await third.run_attempt(aws.attempt(x=6, resumed=True))
    assert aws.output(result) == 36
    assert aws.emulator.counters["SubmitJob"] == 2
    [warning] = [r.getMessage() for r in caplog.records if "are named" in r.getMessage()]
    assert f"2 Batch jobs on queue {aws.emulator.queue} are named fl-{RUN}-0-1; following the newest, {newer}" in (
        warning
    )


DRIVER = """
import sys

import anyio

from flytelike import _runtime
from flytelike._loader import load_file
from flytelike._runtime import Runtime

_runtime._run_id = lambda name=None: sys.argv[2]


async def main() -> None:
    module = load_file(sys.argv[1])
    async with Runtime() as rt:
        handle = await rt.start(module.sleepy_square, 7, 1.5)
        while getattr(handle.run.actions.get("0"), "state", "queued") not in ("running", "initializing"):
            await anyio.sleep(0.02)
        print("submitted", flush=True)
        await anyio.sleep(600)


anyio.run(main)
"""


async def test_a_controller_killed_mid_run_is_taken_over_without_a_second_job(aws: Aws, tmp_path: Path) -> None:
    """The real entrypoint, and a controller process killed with SIGKILL while its job runs."""
    settings = _settings(aws.emulator, tmp_path / "home", [sys.executable, "-m", "flytelike.entry"])
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLYTELIKE_")},
        **aws.emulator.environment(),
        "FLYTELIKE_HOME": str(tmp_path / "first-controller"),
        "FLYTELIKE_BATCH__ENTRYPOINT": f'["{sys.executable}", "-m", "flytelike.entry"]',
        "FLYTELIKE_BATCH__POLL_INTERVAL_MIN": "0.05",
        "FLYTELIKE_BATCH__POLL_INTERVAL_MAX": "0.2",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
    }
    errors = tmp_path / "driver.err"
    with errors.open("wb") as stderr:
        command = [sys.executable, str(driver), str(aws.module_file), RUN]
        async with await anyio.open_process(command, env=env, stderr=stderr) as first:
            assert first.stdout is not None
            with anyio.fail_after(_PATIENCE):
                try:
                    line = await first.stdout.receive()
                except anyio.EndOfStream:
                    line = b""
            assert b"submitted" in line, errors.read_text()
            first.send_signal(signal.SIGKILL)
    assert aws.emulator.counters["SubmitJob"] == 1

    async with aws.controller(settings) as second:
        result = await second.run_attempt(aws.attempt("sleepy_square", resumed=True, x=7, seconds=1.5))
    assert aws.output(result, "sleepy_square") == 49
    assert aws.emulator.counters["SubmitJob"] == 1
    assert aws.emulator.counters["TerminateJob"] == 0
