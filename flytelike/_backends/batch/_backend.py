"""The AWS Batch backend: one job per attempt, all jobs followed by one shared DescribeJobs poll.

An attempt: the code bundle, template and inputs go to the store (``prepare_attempt``); the task's job definition
is looked up or registered once per distinct container spec; its job is submitted; the shared poll reports its
states until it ends; the store says how it ended (``read_attempt``), Batch's reasons when the platform ended it.
Cancellation terminates the job (shielded) before ``run_attempt`` returns, unless the backend was detached
(:meth:`BatchBackend.detach`). Every call takes a token of one bucket (``[batch] calls_per_second``).

A resumed attempt (``AttemptInput.resumed``: an earlier controller of the run may have started it) first looks for
its job by name (one ListJobs per run taken over); a job found is followed as if it had just been submitted, so an
attempt is never run twice and one that ended meanwhile costs no SubmitJob. Other attempts make no such call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from flytelike._backends._input import BackendInput
from flytelike._backends._remote import EntryLaunch, RemoteServices, prepare_attempt, read_attempt
from flytelike._backends.batch._calls import AwsCalls
from flytelike._backends.batch._emulated import BatchEmulatorInfo, running_emulator
from flytelike._backends.batch._jobs import Compute, JobLookups
from flytelike._backends.batch._poller import JobPoller, Watched
from flytelike._backends.batch._spec import (
    TAG_ACTION,
    TAG_ATTEMPT,
    TAG_RUN,
    batch_platform,
    check_task,
    job_name,
    queue_of,
    resource_requirements,
    submit_job,
)
from flytelike._backends.batch._states import TERMINATE_PREFIX, End, Seen, platform_failure, read_job
from flytelike._config import BatchSettings
from flytelike._crash import crash_point
from flytelike._executor import ActionRecord, ActionState, AdmitInput, AttemptInput, AttemptResult, ExecTask
from flytelike.errors import BackendError

__all__ = ["BatchBackend"]

_log = logging.getLogger("flytelike.batch")
_NEVER_SEEN = 120.0  # seconds a submitted job may stay unknown to DescribeJobs (eventual consistency) before failing
_BROKEN_POLLS = 8  # consecutive failed polls after which the attempts being followed fail
_LOG_PAGES = 20  # GetLogEvents pages read for one failed job at most (10,000 events each)
_TERMINATE_TIMEOUT = 30.0


class _NoLease:
    """Admission is Batch's business: its scheduler places jobs on compute environments."""

    def release(self) -> None:
        pass

    def suspend(self) -> None:
        pass

    async def resume(self) -> None:
        pass


def _failure(message: str, kind: str, *, retryable: bool = True) -> BackendError:
    error = BackendError(message)
    error.failure_kind = kind  # type: ignore[attr-defined]
    if not retryable:  # the executor retries nothing that says no retry can help
        error.retryable = False  # type: ignore[attr-defined]
    return error


class BatchBackend:
    """Runs each attempt as an AWS Batch job (see the module's docstring and ``docs/batch.md``).

    Args:
        remote: the runtime's store, bundles and controller.
        settings: the ``[batch]`` settings.

    Attributes:
        calls: the AWS calls, with their counts by operation.
        poller: the shared DescribeJobs poll.
    """

    name = "batch"
    reports_states = True  # the executor hears queued/waiting/initializing/running from us, not at attempt start

    def __init__(
        self,
        remote: RemoteServices,
        settings: BatchSettings,
        *,
        home: Path | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._remote = remote
        self._home = home
        self.emulator: BatchEmulatorInfo | None = None
        self._use(settings, credentials)
        self._stack = contextlib.AsyncExitStack()
        self._failed_polls = 0
        self._poll_error: BaseException | None = None
        self._streams: dict[tuple[str, str, int], tuple[str, str]] = {}  # attempt -> log group and stream
        self._detached = False

    @classmethod
    def from_input(cls, spec: BackendInput) -> BatchBackend:
        """The backend for a runtime; ``spec.options`` may override ``[batch]`` keys (``{"queue": "q"}``)."""
        if spec.remote is None:
            raise BackendError("the Batch backend needs the runtime's remote services (store, controller)")
        settings = spec.settings.batch
        if spec.options:
            settings = dataclasses.replace(settings, **dict(spec.options))
        return cls(spec.remote, settings, home=spec.settings.home)

    def _use(self, settings: BatchSettings, credentials: tuple[str, str] | None) -> None:
        self.settings = settings
        self.calls = AwsCalls(settings, credentials=credentials)
        self.poller = JobPoller(
            self.calls,
            minimum=settings.poll_interval_min,
            maximum=settings.poll_interval_max,
            on_error=self._poll_failed,
        )
        self.lookups = JobLookups(self.calls, settings)

    async def __aenter__(self) -> BatchBackend:
        if not self.settings.endpoint_url:
            emulator = await anyio.to_thread.run_sync(running_emulator, self._home)
            if emulator is not None:
                # No endpoint is configured, and `flytelike emulator batch` runs here: its jobs are processes of
                # this machine, started with the emulator's own interpreter unless an entrypoint is configured.
                entrypoint = self.settings.entrypoint
                if entrypoint == BatchSettings().entrypoint:
                    entrypoint = emulator.entrypoint
                settings = dataclasses.replace(
                    self.settings,
                    endpoint_url=emulator.endpoint_url,
                    region=self.settings.region or emulator.region,
                    queue=self.settings.queue or emulator.queue,
                    entrypoint=entrypoint,
                )
                self._use(settings, (emulator.access_key_id, emulator.secret_access_key))
                self.emulator = emulator
        try:
            await self._stack.enter_async_context(self.calls)
            if self.settings.queue:
                await self.lookups.compute(self.settings.queue)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()

    # --- before a run -------------------------------------------------------------------------------------------

    def check(self, tasks: Sequence[ExecTask]) -> None:
        """Refuse what Batch would refuse (EC2 and Fargate rules where the queue's type is known already: the
        ``[batch] queue``'s; a task naming another queue is checked against it before its first job)."""
        for task in tasks:
            if not self._remote.in_process.from_template(task) and self._remote.in_process.code_file(task) is None:
                raise BackendError(
                    f"task {task.name} cannot run on Batch: its module has no file to ship as a code bundle "
                    "(define it in a .py file)"
                )
            check_task(task, self.settings, self.lookups.known_compute(queue_of(task, self.settings)))

    async def admit(self, request: AdmitInput) -> _NoLease:
        return _NoLease()

    def detach(self) -> None:
        """Leave running, from now on, the job of every attempt that is cancelled, instead of terminating it.

        For a controller that stops without ending the work it started: the one that takes its runs over gives
        their attempts to a backend with ``resumed=True``, which follows these jobs instead of submitting new
        ones. A cancelled attempt still returns at once; only its TerminateJob is left out.
        """
        self._detached = True

    # --- an attempt ---------------------------------------------------------------------------------------------

    async def run_attempt(self, attempt: AttemptInput) -> AttemptResult:
        task, run, action = attempt.task, attempt.run, attempt.action
        queue = queue_of(task, self.settings)
        compute = await self.lookups.compute(queue)
        check_task(task, self.settings, compute)
        launch = await prepare_attempt(self._remote, attempt, platform=self.name)
        name = job_name(run.id, action.id, attempt.attempt)
        job_id: str | None = None
        watched: Watched | None = None
        submitting = False
        try:
            # Only a resumed attempt may have a job already: asking for the others would cost a call per run.
            job_id = await self.lookups.existing(run.id, queue, name) if attempt.resumed else None
            if job_id is not None:
                _log.info("resumed attempt %s of task %s follows Batch job %s", name, task.name, job_id)
            else:
                submitting = True
                job_id = await self._submit(attempt, launch, compute, queue, name)
                crash_point("created", action.id)
            watched = self.poller.watch(job_id)
            seen = await self._follow(attempt, watched, queue, compute)
            if seen.log_stream:
                self._remember_stream(action, attempt.attempt, self._log_group(task), seen.log_stream)
            if platform_failure(seen) is None:
                return await self._read(attempt, launch, seen)
            raise await self._platform_failure(attempt, job_id, seen)
        except anyio.get_cancelled_exc_class():
            if self._detached:
                raise
            with anyio.CancelScope(shield=True), anyio.move_on_after(_TERMINATE_TIMEOUT):
                # Cancelled while SubmitJob was in flight, the job may exist although its id never came back.
                await self._terminate(queue, name if submitting else "", job_id, watched, "attempt cancelled")
            raise
        finally:
            if job_id is not None:
                self.poller.forget(job_id)
            if launch.calls_back:
                self._remote.attempt_ended(run, action)

    async def _submit(self, attempt: AttemptInput, launch: EntryLaunch, compute: Compute, queue: str, name: str) -> str:
        task = attempt.task
        definition = await self.lookups.definition(task, compute)
        body = submit_job(
            task,
            self.settings,
            compute,
            name=name,
            definition=definition,
            command=[*self.settings.entrypoint, *launch.args],
            environment=launch.env,
            memory=attempt.memory,
            tags={TAG_RUN: attempt.run.id, TAG_ACTION: attempt.action.id, TAG_ATTEMPT: str(attempt.attempt)},
        )

        async def applied() -> dict[str, Any] | None:
            found = await self.lookups.find(queue, name)
            return None if found is None else {"jobId": found, "jobName": name}

        answer = await self.calls.call("batch", "SubmitJob", body, applied=applied)
        return str(answer["jobId"])

    async def _follow(self, attempt: AttemptInput, watched: Watched, queue: str, compute: Compute) -> Seen:
        """Report the job's states until it ends; fail it when RUNNABLE too long (INFRA) or when it cannot be seen."""
        report: Callable[..., None] | None = getattr(attempt.run, "report", None)
        action = attempt.action
        started = anyio.current_time()
        runnable_since: float | None = None
        reported: tuple[ActionState, str] | None = None
        while True:
            if self._poll_error is not None and self._failed_polls >= _BROKEN_POLLS:
                raise BackendError(
                    f"cannot follow Batch job {watched.job_id} of task {attempt.task.name}: {self._poll_error}"
                )
            now = anyio.current_time()
            wait = math.inf
            if watched.job is None:
                wait = started + _NEVER_SEEN - now
                if wait <= 0:
                    raise BackendError(
                        f"Batch job {watched.job_id} of task {attempt.task.name} was submitted but DescribeJobs has "
                        f"not shown it for {_NEVER_SEEN:.0f} s"
                    )
            else:
                seen = read_job(watched.job)
                if seen.end is not None:
                    return seen
                assert seen.state is not None
                reason = seen.reason
                if seen.state is ActionState.WAITING:
                    reason = reason or f"waiting in queue {queue} for room on its compute environments"
                    runnable_since = runnable_since if runnable_since is not None else now
                    wait = runnable_since + self.settings.runnable_timeout - now
                    if wait <= 0:
                        await self._terminate(queue, "", watched.job_id, watched, "RUNNABLE too long")
                        raise self._runnable_timeout(attempt, queue, compute, seen)
                else:
                    runnable_since = None
                if report is not None and reported != (seen.state, reason):
                    reported = (seen.state, reason)
                    report(action, seen.state, reason)
            with anyio.move_on_after(wait):
                await self.poller.wait(watched)

    def _runnable_timeout(self, attempt: AttemptInput, queue: str, compute: Compute, seen: Seen) -> BackendError:
        request = ", ".join(
            f"{r['type']}={r['value']}" for r in resource_requirements(attempt.task, attempt.memory, compute)
        )
        why = f" ({seen.reason})" if seen.reason else ""
        return _failure(
            f"task {attempt.task.name} (action {attempt.action.id}, attempt {attempt.attempt}) waited in RUNNABLE on "
            f"queue {queue} for more than {self.settings.runnable_timeout:g} s{why}: its request {request} (MEMORY "
            "in MiB) may not fit any compute environment of the queue; check their instance types and maxvCpus, or "
            "raise [batch] runnable_timeout",
            "infra",
        )

    async def _read(self, attempt: AttemptInput, launch: EntryLaunch, seen: Seen) -> AttemptResult:
        # A job that succeeded wrote its output to the store; CloudWatch is read only for the ones that did not.
        output = (
            "" if seen.end is End.SUCCEEDED else await self.cloudwatch(self._log_group(attempt.task), seen.log_stream)
        )
        try:
            return await read_attempt(
                self._remote,
                attempt,
                launch,
                exit_code=seen.exit_code,
                oom_killed=seen.end is End.OOM,
                output=output,
            )
        except BackendError as e:
            if hasattr(e, "traceback_text") or not seen.reason:
                raise
            # Nothing in the store: the job's own end is the best account of it.
            raised = BackendError(f"{e} (Batch: {seen.reason})")
            if hasattr(e, "failure_kind"):
                raised.failure_kind = e.failure_kind  # type: ignore[attr-defined]
            raise raised from None

    async def _platform_failure(self, attempt: AttemptInput, job_id: str, seen: Seen) -> BackendError:
        failure = platform_failure(seen)
        assert failure is not None
        where = f"task {attempt.task.name} (action {attempt.action.id}, attempt {attempt.attempt}, Batch job {job_id})"
        output = await self.cloudwatch(self._log_group(attempt.task), seen.log_stream)
        if output and not self._remote.streamed_logs(attempt.run, attempt.action, attempt.attempt):
            attempt.action.logs = [*(attempt.action.logs or ()), output]
        return _failure(f"{where} {failure.what}: {seen.reason}", failure.kind, retryable=failure.retryable)

    async def _terminate(self, queue: str, name: str, job_id: str | None, watched: Watched | None, why: str) -> None:
        """TerminateJob of ``job_id`` unless it ended; without an id, of the job named ``name`` if there is one."""
        if job_id is None:
            if not name:
                return
            job_id = await self.lookups.find(queue, name)
            if job_id is None:
                return
        if watched is not None and watched.job is not None and read_job(watched.job).end is not None:
            return
        try:
            await self.calls.call(
                "batch", "TerminateJob", {"jobId": job_id, "reason": f"{TERMINATE_PREFIX}{why} ({name or job_id})"}
            )
        except BackendError as e:
            _log.warning("could not terminate Batch job %s: %s", job_id, e)

    # --- logs ---------------------------------------------------------------------------------------------------

    def _remember_stream(self, action: ActionRecord, attempt: int, group: str, stream: str) -> None:
        if len(self._streams) >= 10_000:  # the latest attempts' streams are the ones asked for
            self._streams.pop(next(iter(self._streams)))
        self._streams[(action.run_id, action.id, attempt)] = (group, stream)

    def _log_group(self, task: ExecTask) -> str:
        for option in batch_platform(task).log_options:
            key, _, value = option.partition(":")
            if key == "awslogs-group":
                return value
        return self.settings.log_group

    async def cloudwatch(self, group: str, stream: str | None) -> str:
        """What a job's log stream holds (up to ``_LOG_PAGES`` pages); empty when it has none or cannot be read."""
        if not stream:
            return ""
        params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        lines: list[str] = []
        for _ in range(_LOG_PAGES):
            try:
                page = await self.calls.call("logs", "GetLogEvents", params)
            except BackendError as e:
                _log.info("no logs from %s/%s: %s", group, stream, e)
                break
            lines.extend(str(event.get("message", "")) for event in page.get("events", []))
            token = page.get("nextForwardToken")
            if not page.get("events") or not token or token == params.get("nextToken"):
                break
            params["nextToken"] = token
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    async def logs(self, action: ActionRecord, attempt: int) -> str:
        if action.logs:
            return "".join(action.logs)
        where = self._streams.get((action.run_id, action.id, attempt))
        return "" if where is None else await self.cloudwatch(*where)

    # --- the poll -----------------------------------------------------------------------------------------------

    def _poll_failed(self, error: BaseException | None) -> None:
        if error is None:
            self._failed_polls, self._poll_error = 0, None
            return
        self._failed_polls += 1
        self._poll_error = error
        _log.warning("DescribeJobs poll failed (%d in a row): %s", self._failed_polls, error)
