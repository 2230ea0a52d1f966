"""The job runner that replaces moto's Docker one: each job goes through every Batch state and runs its command as
a local process through the :class:`~flytelike.testing.Launcher`.

SUBMITTED -> PENDING (waits for ``dependsOn``) -> RUNNABLE (waits for capacity) -> STARTING (the process is
started, the log stream created) -> RUNNING -> SUCCEEDED | FAILED. The process's output goes to CloudWatch Logs as it
is written; its memory is limited to the MEMORY requirement (past it: ``OutOfMemoryError``, exit 137); past
``attemptDurationSeconds`` it gets SIGTERM, then SIGKILL after the stop grace period, as Batch does. Everything here
runs on the emulator's event loop thread; the HTTP threads reach it through the loop's portal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc

from flytelike.testing._launcher import Launched, Launcher, LaunchInput, ProcessExit
from flytelike.testing.batch._record import BEFORE_START, JobRecord, now_ms
from flytelike.testing.batch._scheduler import Holds, Scheduler

__all__ = [
    "ESSENTIAL_EXITED",
    "OUT_OF_MEMORY",
    "TIMED_OUT",
    "JobRunner",
    "LogSink",
    "RunnerSettings",
]

ESSENTIAL_EXITED = "Essential container in task exited"
OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"
TIMED_OUT = "Job attempt duration exceeded timeout"
DEPENDENCY_FAILED = "Dependent Job failed"
_LOG_POLL_SECONDS = 0.1


class LogSink(Protocol):
    """Where job output goes: CloudWatch Logs streams of the log group ``/aws/batch/job``."""

    def create_stream(self, stream: str) -> None: ...

    def put(self, stream: str, events: list[dict[str, object]]) -> None: ...


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """How jobs are run.

    Attributes:
        base_environment: variables every job sees before its own (what a container image would set: PATH ...).
        aws_environment: the endpoint, region and credentials a job's AWS clients need to reach the emulator.
        transition_delay: seconds a job stays in each state before RUNNING, so that pollers see every state.
        time_scale: factor applied to ``attemptDurationSeconds`` and to the stop grace period.
        stop_grace: seconds between SIGTERM and SIGKILL when a job is terminated or times out (before scaling).
        task_arn_prefix: the ARN of the ECS tasks that run the jobs, without the task id.
        scratch: the directory for the jobs' output files.
    """

    base_environment: Mapping[str, str]
    aws_environment: Mapping[str, str]
    transition_delay: float
    time_scale: float
    stop_grace: float
    task_arn_prefix: str
    scratch: Path


class _Run:
    """What the runner keeps about a job in flight."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        self.scope = anyio.CancelScope()
        self.stop_reason: str | None = None
        self.cancelled = False
        self.process: Launched | None = None
        self.timed_out = False
        self.ended = anyio.Event()


class JobRunner:
    """Runs jobs in a task group of the emulator's event loop."""

    def __init__(
        self,
        *,
        launcher: Launcher,
        scheduler: Scheduler,
        holds: Holds,
        logs: LogSink,
        settings: RunnerSettings,
        task_group: anyio.abc.TaskGroup,
        jobs: Mapping[str, JobRecord],
    ) -> None:
        self._launcher = launcher
        self._scheduler = scheduler
        self.holds = holds
        self._logs = logs
        self._settings = settings
        self._tg = task_group
        self._jobs = jobs
        self._runs: dict[str, _Run] = {}

    def submit(self, record: JobRecord) -> None:
        run = _Run(record)
        self._runs[record.spec.job_id] = run
        self._tg.start_soon(self._lifecycle, run)

    def stop(self, job_id: str, reason: str, *, cancel: bool) -> None:
        """TerminateJob (``cancel=False``) or CancelJob: CancelJob stops only jobs that have not started yet."""
        run = self._runs.get(job_id)
        if run is None or run.record.done or run.stop_reason is not None:
            return
        if cancel and run.record.status not in BEFORE_START:
            return  # Batch: STARTING/RUNNING jobs are not cancelled, the call still succeeds
        run.stop_reason = reason
        run.cancelled = cancel
        if run.process is not None:
            self._tg.start_soon(run.process.terminate, self._grace())
        else:
            run.scope.cancel()

    async def wait(self, job_id: str) -> None:
        run = self._runs.get(job_id)
        if run is not None:
            await run.ended.wait()

    def _grace(self) -> float:
        return self._settings.stop_grace * self._settings.time_scale

    async def _lifecycle(self, run: _Run) -> None:
        record = run.record
        try:
            with run.scope:
                await self._pass("SUBMITTED")
                record.move("PENDING")
                await self._pass("PENDING")
                if not await self._dependencies_succeeded(record):
                    record.finish("FAILED", DEPENDENCY_FAILED)
                    return
                record.move("RUNNABLE")
                await self._pass("RUNNABLE")
                environment = await self._scheduler.place(record)
                record.move("STARTING", compute_environment=environment)
                await self._pass("STARTING")
            if run.stop_reason is not None:
                record.finish("FAILED", run.stop_reason, is_cancelled=run.cancelled, is_terminated=not run.cancelled)
                return
            await self._run_process(run)
        finally:
            self._scheduler.release(record)
            run.ended.set()

    async def _pass(self, status: str) -> None:
        if self._settings.transition_delay:
            await anyio.sleep(self._settings.transition_delay)
        await self.holds.wait(status)

    async def _dependencies_succeeded(self, record: JobRecord) -> bool:
        for job_id in record.spec.depends_on:
            dependency = self._runs.get(job_id)
            if dependency is not None:
                await dependency.ended.wait()
            found = self._jobs.get(job_id)
            if found is None or found.status != "SUCCEEDED":
                return False
        return True

    def _environment(self, record: JobRecord) -> dict[str, str]:
        spec = record.spec
        env = {**self._settings.base_environment, **self._settings.aws_environment, **spec.environment}
        env.update(
            AWS_BATCH_JOB_ID=spec.job_id,
            AWS_BATCH_JOB_ATTEMPT="1",
            AWS_BATCH_CE_NAME=record.compute_environment or "",
            AWS_BATCH_JQ_NAME=spec.queue,
        )
        return env

    async def _run_process(self, run: _Run) -> None:
        record = run.record
        spec = record.spec
        task_arn = f"{self._settings.task_arn_prefix}{spec.job_id.replace('-', '')}"
        if not spec.command:
            record.finish(
                "FAILED",
                ESSENTIAL_EXITED,
                container_reason="CannotStartContainerError: the emulator runs no images; give the job a command",
                task_arn=task_arn,
            )
            return
        folder = self._settings.scratch / spec.job_id
        memory = (spec.memory_mib or 0) * 1024 * 1024
        launch = LaunchInput(spec.command, env=self._environment(record), memory_limit=memory, output=folder / "out")
        try:
            process = await self._launcher.start(launch)
        except OSError as error:
            record.finish(
                "FAILED",
                ESSENTIAL_EXITED,
                container_reason=f"CannotStartContainerError: {spec.command[0]}: {error.strerror or error}",
                task_arn=task_arn,
            )
            return
        run.process = process
        await anyio.to_thread.run_sync(self._logs.create_stream, spec.log_stream)
        record.move("RUNNING", started_at=now_ms(), log_stream_name=spec.log_stream, task_arn=task_arn)
        if run.stop_reason is not None:  # terminated while the process was being started
            self._tg.start_soon(process.terminate, self._grace())
        tail = _LogTail(process.output_path, spec.log_stream, self._logs)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tail.follow)
            if spec.attempt_duration is not None:
                tg.start_soon(self._deadline, run, spec.attempt_duration * self._settings.time_scale)
            exit = await process.wait()
            tg.cancel_scope.cancel()
        await anyio.to_thread.run_sync(tail.pump, True)
        self._finish(run, exit)

    async def _deadline(self, run: _Run, seconds: float) -> None:
        await anyio.sleep(seconds)
        if run.process is not None and run.stop_reason is None:
            run.timed_out = True
            await run.process.terminate(self._grace())

    def _finish(self, run: _Run, exit: ProcessExit) -> None:
        record = run.record
        if exit.oom_killed:
            record.finish("FAILED", ESSENTIAL_EXITED, exit_code=exit.returncode, container_reason=OUT_OF_MEMORY)
        elif run.stop_reason is not None:
            record.finish("FAILED", run.stop_reason, exit_code=exit.returncode, is_terminated=True)
        elif run.timed_out:
            record.finish("FAILED", TIMED_OUT, exit_code=exit.returncode)
        elif exit.returncode == 0:
            record.finish("SUCCEEDED", ESSENTIAL_EXITED, exit_code=0)
        else:
            record.finish("FAILED", ESSENTIAL_EXITED, exit_code=exit.returncode)


class _LogTail:
    """Sends what a process writes to its log stream, one event per line, as the lines are completed."""

    def __init__(self, path: Path, stream: str, sink: LogSink) -> None:
        self._path = path
        self._stream = stream
        self._sink = sink
        self._offset = 0
        self._partial = b""

    async def follow(self) -> None:
        while True:
            await anyio.to_thread.run_sync(self.pump, False)
            await anyio.sleep(_LOG_POLL_SECONDS)

    def pump(self, final: bool) -> None:
        data = b""
        with contextlib.suppress(FileNotFoundError), open(self._path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        rest = lines.pop()  # what follows the last newline: a line still being written
        if final and rest:
            lines.append(rest)
            rest = b""
        self._partial = rest
        stamp = now_ms()
        events: list[dict[str, object]] = [
            {"timestamp": stamp, "message": line.decode(errors="replace").rstrip("\r")} for line in lines
        ]
        if events:
            self._sink.put(self._stream, events)
