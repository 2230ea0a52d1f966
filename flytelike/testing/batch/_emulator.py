"""The AWS Batch emulator: moto serving Batch, S3 and CloudWatch Logs on a loopback port, with jobs run as local
processes.

moto is imported only when an emulator starts, so importing :mod:`flytelike.testing` costs nothing when no
emulator is used.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.from_thread

from flytelike.testing._launcher import Launcher
from flytelike.testing.batch._faults import Counters, Faults
from flytelike.testing.batch._middleware import EmulatorMiddleware, WSGIApp
from flytelike.testing.batch._record import JobRecord
from flytelike.testing.batch._runner import JobRunner, LogSink, RunnerSettings
from flytelike.testing.batch._scheduler import Holds, Scheduler
from flytelike.testing.batch._smoke import check_moto

if TYPE_CHECKING:
    from types import ModuleType

    from flytelike.testing.batch._moto import EmulatedBatchBackend
    from flytelike.testing.batch._server import MotoServer

__all__ = ["BatchEmulator"]

_MOTO_SERVICES = ("batch", "logs", "s3", "iam", "ec2", "ecs", "sts")
"""moto's per-account state the emulator's account may have: cleared when the emulator stops."""


class BatchEmulator:
    """An AWS Batch (with S3 and CloudWatch Logs) endpoint on 127.0.0.1 whose jobs run as local processes.

    Every job goes through SUBMITTED, PENDING, RUNNABLE, STARTING and RUNNING to SUCCEEDED or FAILED, running its
    container's command (``Ref::`` parameters substituted) with the container's environment plus
    ``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JOB_ATTEMPT``, ``AWS_BATCH_CE_NAME`` and ``AWS_BATCH_JQ_NAME``, its memory
    limited to its MEMORY requirement (past it: ``OutOfMemoryError``, exit 137) and its run to
    ``attemptDurationSeconds``; its output is written to the log stream ``<jobDefinition>/default/<jobId>`` of
    ``/aws/batch/job`` as it goes. At start there are an EC2 and a Fargate compute environment, a queue for each,
    and a bucket. Use it as a context manager, ``with`` or ``async with``.

    Args:
        port: the port to listen on (0: a free one).
        region: the region the clients use.
        account_id: the AWS account of everything made (default: a random one, so emulators never share state).
        queue: the job queue of the EC2 compute environment (``queue``), the default one.
        fargate_queue: the job queue of the Fargate compute environment.
        compute_environment: the EC2 compute environment's name.
        fargate_compute_environment: the Fargate compute environment's name.
        max_vcpus: the EC2 environment's maxvCpus (jobs that do not fit wait in RUNNABLE).
        fargate_max_vcpus: the Fargate environment's maxvCpus.
        bucket: the S3 bucket made at start (default ``flytelike-<account_id>``: bucket names are shared by
            every account, so two emulators in one process need two names).
        job_environment: variables every job starts from, as a container image would set them (default: this
            process's PATH and LANG=C.UTF-8).
        transition_delay: seconds a job spends in each state before RUNNING, so that pollers see them all.
        time_scale: factor on ``attemptDurationSeconds`` and the stop grace period (tests use e.g. 0.01 so the
            60-second minimum attempt duration passes in 0.6 s).
        stop_grace: seconds from SIGTERM to SIGKILL when a job is terminated or times out (30, as ECS).
        seed: seed of the fault injection's random draws.

    Example:
        >>> with BatchEmulator() as batch:  # doctest: +SKIP
        ...     env = batch.environment()  # AWS_ENDPOINT_URL, credentials, FLYTELIKE_BATCH__QUEUE ...
    """

    def __init__(
        self,
        *,
        port: int = 0,
        region: str = "us-east-1",
        account_id: str | None = None,
        queue: str = "flytelike",
        fargate_queue: str = "flytelike-fargate",
        compute_environment: str = "flytelike-ec2",
        fargate_compute_environment: str = "flytelike-fargate",
        max_vcpus: int = 256,
        fargate_max_vcpus: int = 256,
        bucket: str | None = None,
        job_environment: dict[str, str] | None = None,
        transition_delay: float = 0.05,
        time_scale: float = 1.0,
        stop_grace: float = 30.0,
        seed: int = 0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"BatchEmulator port {port!r} is not a TCP port: give 0 (any free port) to 65535")
        if account_id is not None and not (len(account_id) == 12 and account_id.isdigit()):
            raise ValueError(f"BatchEmulator account_id {account_id!r} is not 12 digits (e.g. '123456789012')")
        for name, value in (("transition_delay", transition_delay), ("stop_grace", stop_grace)):
            if value < 0:
                raise ValueError(f"BatchEmulator {name} {value!r} is negative: give seconds, 0 or more")
        if time_scale <= 0:
            raise ValueError(f"BatchEmulator time_scale {time_scale!r} must be above 0 (1: real time, 0.01: 100x)")
        for name, vcpus in (("max_vcpus", max_vcpus), ("fargate_max_vcpus", fargate_max_vcpus)):
            if vcpus < 0:
                raise ValueError(f"BatchEmulator {name} {vcpus!r} is negative: give a number of vCPUs, 0 or more")
        self.port = port
        self.region = region
        self.account_id = account_id or str(random.SystemRandom().randrange(10**11, 10**12))
        self.queue = queue
        self.fargate_queue = fargate_queue
        self.compute_environment = compute_environment
        self.fargate_compute_environment = fargate_compute_environment
        self.bucket = bucket or f"flytelike-{self.account_id}"
        self.access_key_id = "testing"
        self.secret_access_key = "testing"
        self.counters = Counters()
        self.faults = Faults(seed=seed)
        self._max_vcpus = (max_vcpus, fargate_max_vcpus)
        self._job_environment = (
            dict(job_environment)
            if job_environment is not None
            else {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
        )
        self._transition_delay = transition_delay
        self._time_scale = time_scale
        self._stop_grace = stop_grace
        self._holds = Holds()
        self._records: dict[str, JobRecord] = {}
        self._server: MotoServer | None = None
        self._backend: EmulatedBatchBackend | None = None
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._serving: Future[None] | None = None
        self._runner: JobRunner | None = None
        self._stopping: anyio.Event | None = None
        self._scratch: Path | None = None
        self._endpoint: str | None = None
        self._moto: ModuleType | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``, for every service (Batch, S3, CloudWatch Logs)."""
        if self._endpoint is None:
            raise RuntimeError("the BatchEmulator is not started: use it as a context manager, or call start()")
        return self._endpoint

    def environment(self) -> dict[str, str]:
        """The variables that point AWS clients and flytelike at this emulator."""
        endpoint = self.endpoint_url
        return {
            **self._aws_environment(),
            "FLYTELIKE_BATCH__ENDPOINT_URL": endpoint,
            "FLYTELIKE_BATCH__QUEUE": self.queue,
            "FLYTELIKE_STORE__URL": f"s3://{self.bucket}/store",
            "FLYTELIKE_STORE__ENDPOINT_URL": endpoint,
        }

    def _aws_environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    @property
    def credentials(self) -> dict[str, str]:
        """The fake credentials the emulator accepts (any are accepted; these are what it hands out)."""
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``session.client(service, **kwargs)`` (boto3 or aioboto3)."""
        return {"endpoint_url": self.endpoint_url, "region_name": self.region, **self.credentials}

    # test hooks

    def hold(self, status: str) -> None:
        """Keep jobs in ``status`` (SUBMITTED, PENDING, RUNNABLE or STARTING) until :meth:`release`."""
        self._holds.hold(status)

    def release(self, status: str | None = None) -> None:
        """Let jobs held in ``status`` (None: in every held state) go on."""
        self._holds.release(status)

    def job(self, job_id: str) -> JobRecord:
        """The emulator's record of a job: its status, the statuses it went through (``statuses``), its exit."""
        try:
            return self._records[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r} was submitted to this emulator") from None

    # what the emulated backend calls, from the HTTP threads

    def submit(self, record: JobRecord) -> None:
        self._records[record.spec.job_id] = record
        self._call(lambda runner: runner.submit(record))

    def stop(self, job_id: str, reason: str, *, cancel: bool) -> None:
        self._call(lambda runner: runner.stop(job_id, reason, cancel=cancel))

    def _call(self, action: Callable[[JobRunner], None]) -> None:
        portal, runner = self._portal, self._runner
        if portal is None or runner is None:
            raise RuntimeError("the BatchEmulator is not running (not started yet, or stopping)")
        portal.call(action, runner)

    # life cycle

    def start(self) -> BatchEmulator:
        """Start serving (what entering the context manager does)."""
        if self._endpoint is not None:
            raise RuntimeError("this BatchEmulator is already started")
        check_moto()
        # These import moto (and Flask, werkzeug): a test dependency, loaded when an emulator starts, not before.
        from flytelike.testing.batch import _moto, _server

        self._moto = _moto
        self._scratch = Path(tempfile.mkdtemp(prefix="flytelike-batch-"))
        try:
            self._backend = _moto.install_backend(self.account_id, self.region, self)
            self._server = _server.MotoServer(self._wrap, port=self.port)
            self._server.start()
            host, port = self._server.address
            self._endpoint = f"http://{host}:{port}"
            self._start_runner(_moto.MotoLogSink(self.account_id, self.region))
            self._make_defaults()
        except BaseException:
            self.close()
            raise
        return self

    def _wrap(self, app: WSGIApp) -> WSGIApp:
        return EmulatorMiddleware(app, account_id=self.account_id, counters=self.counters, faults=self.faults)

    def _start_runner(self, logs: LogSink) -> None:
        assert self._scratch is not None
        assert self._backend is not None
        settings = RunnerSettings(
            base_environment=self._job_environment,
            aws_environment={**self._aws_environment(), "AWS_REGION": self.region},
            transition_delay=self._transition_delay,
            time_scale=self._time_scale,
            stop_grace=self._stop_grace,
            task_arn_prefix=f"arn:aws:ecs:{self.region}:{self.account_id}:task/",
            scratch=self._scratch / "jobs",
        )
        backend = self._backend

        async def serve(*, task_status: anyio.abc.TaskStatus[JobRunner]) -> None:
            self._stopping = anyio.Event()
            async with Launcher() as launcher, anyio.create_task_group() as tg:
                scheduler = Scheduler(backend.queue_view)
                runner = JobRunner(
                    launcher=launcher,
                    scheduler=scheduler,
                    holds=self._holds,
                    logs=logs,
                    settings=settings,
                    task_group=tg,
                    jobs=self._records,
                )
                tg.start_soon(scheduler.run)
                task_status.started(runner)
                await self._stopping.wait()
                tg.cancel_scope.cancel()

        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        self._serving, self._runner = self._portal.start_task(serve)

    def _make_defaults(self) -> None:
        assert self._backend is not None
        assert self._moto is not None
        for name, queue, fargate, vcpus in (
            (self.compute_environment, self.queue, False, self._max_vcpus[0]),
            (self.fargate_compute_environment, self.fargate_queue, True, self._max_vcpus[1]),
        ):
            environment = self._backend.add_compute_environment(name, fargate=fargate, max_vcpus=vcpus)
            self._backend.add_job_queue(queue, environment)
        self._moto.make_bucket(self.account_id, self.region, self.bucket)

    def close(self) -> None:
        """Stop serving, kill the jobs still running and forget everything the emulator's account had."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._portal is not None and self._portal_cm is not None:
            stopping = self._stopping
            if stopping is not None:
                self._portal.call(stopping.set)
            if self._serving is not None:
                self._serving.result(timeout=30)
            self._portal_cm.__exit__(None, None, None)
        self._portal = self._portal_cm = None
        self._runner = None
        self._serving = None
        if self._backend is not None and self._moto is not None:
            self._moto.forget_account(self.account_id, _MOTO_SERVICES)
            self._backend = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self._endpoint = None

    def __enter__(self) -> BatchEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> BatchEmulator:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)
