"""moto's Batch backend with its job runner replaced, and the checks moto does not make.

moto runs each submitted job in a thread that drives a Docker container. :class:`EmulatedBatchBackend` keeps
moto's compute environments, queues, job definitions, tags and ARNs, but its SubmitJob builds an
:class:`EmulatedJob` whose ``start`` hands the job to the emulator's runner instead of starting that thread, and
whose status and description come from the runner's :class:`~flytelike.testing.batch._record.JobRecord`. The
backend is installed for the emulator's own account and region only (``batch_backends[account][region]``), so
moto's behaviour elsewhere in the process is unchanged. ``_smoke.check_moto`` verifies, before any of this is
used, that the moto internals named here still have the shape relied on.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Protocol

from moto.backends import get_backend
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, ComputeEnvironment, Job, JobDefinition, JobQueue, batch_backends
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends

from flytelike.testing.batch._record import STATES, JobRecord, JobSpec
from flytelike.testing.batch._scheduler import EnvironmentView, QueueView
from flytelike.testing.batch._spec import container_command, container_environment, resource_amounts
from flytelike.testing.batch._validation import (
    BatchClientError,
    check_container_overrides,
    check_job_definition,
    check_job_name,
    check_tags,
    check_timeout,
)

__all__ = [
    "LOG_GROUP",
    "EmulatedBatchBackend",
    "EmulatedJob",
    "Emulation",
    "MotoLogSink",
    "forget_account",
    "install_backend",
    "make_bucket",
]

LOG_GROUP = "/aws/batch/job"

MAX_DESCRIBE = 100


class Emulation(Protocol):
    """The emulator, as the backend sees it: it runs and stops jobs (from the HTTP threads)."""

    def submit(self, record: JobRecord) -> None: ...

    def stop(self, job_id: str, reason: str, *, cancel: bool) -> None: ...


def _client_error(detail: str) -> ClientException:
    return ClientException(f"Error executing request, Exception : {detail}, RequestId: {uuid.uuid4()}")


def _platform(job_def: JobDefinition) -> str:
    return "FARGATE" if "FARGATE" in (job_def.platform_capabilities or ()) else "EC2"


def _environment_platform(environment: ComputeEnvironment) -> str:
    kind = str((environment.compute_resources or {}).get("type", "EC2"))
    return "FARGATE" if kind.startswith("FARGATE") else "EC2"


class EmulatedJob(Job):
    """A moto Job run by the emulator: never started as a thread, described from its record."""

    record: JobRecord

    @property
    def status(self) -> str | None:
        record = self.__dict__.get("record")
        return record.status if record is not None else self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value  # moto's own writes (reset) do not change what the runner reports

    def start(self) -> None:
        raise RuntimeError("an emulated job is run by the emulator's runner, not as moto's thread")

    def terminate(self, reason: str) -> None:
        backend = self.backend
        assert isinstance(backend, EmulatedBatchBackend)
        backend.emulation.stop(self.job_id, reason, cancel=False)

    def describe_short(self) -> dict[str, Any]:
        return self.record.summary()

    def describe(self) -> dict[str, Any]:
        spec = self.record.spec
        details = self.record.details()
        container_properties = copy.deepcopy(self.job_definition.container_properties or {})
        container: dict[str, Any] = {
            **container_properties,
            **{k: v for k, v in self.container_overrides.items() if k not in ("environment", "resourceRequirements")},
            "command": list(spec.command),
            "environment": [{"name": k, "value": v} for k, v in spec.environment.items()],
            "resourceRequirements": self._resource_requirements(spec),
            "networkInterfaces": [],
            **details.pop("container"),
        }
        found: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.job_name,
            "jobId": self.job_id,
            "jobQueue": self.job_queue.arn,
            "dependsOn": self.depends_on or [],
            "jobDefinition": self.job_definition.arn,
            "parameters": dict(self.parameters),
            "container": container,
            "tags": self.backend.list_tags_for_resource(self.arn),
            "propagateTags": bool(self.job_definition.propagate_tags),
            "platformCapabilities": [spec.platform],
            **details,
        }
        if spec.attempt_duration is not None:
            found["timeout"] = {"attemptDurationSeconds": spec.attempt_duration}
        return found

    @staticmethod
    def _resource_requirements(spec: JobSpec) -> list[dict[str, str]]:
        found = [{"type": "VCPU", "value": f"{spec.vcpus:g}"}]
        if spec.memory_mib is not None:
            found.append({"type": "MEMORY", "value": str(spec.memory_mib)})
        if spec.gpus:
            found.append({"type": "GPU", "value": str(spec.gpus)})
        return found


class EmulatedBatchBackend(BatchBackend):
    """moto's Batch backend for one account and region of the emulator."""

    emulation: Emulation

    def register_job_definition(
        self,
        def_name: str,
        parameters: dict[str, Any],
        _type: str,
        tags: dict[str, str],
        retry_strategy: dict[str, Any],
        container_properties: dict[str, Any] | None,
        node_properties: dict[str, Any] | None,
        eks_properties: dict[str, Any] | None,
        timeout: dict[str, int],
        platform_capabilities: list[str],
        propagate_tags: bool,
    ) -> JobDefinition:
        request = {
            "jobDefinitionName": def_name,
            "containerProperties": container_properties,
            "nodeProperties": node_properties,
            "eksProperties": eks_properties,
            "timeout": timeout,
            "tags": tags,
            "platformCapabilities": platform_capabilities,
        }
        try:
            check_job_definition(request)
        except BatchClientError as error:
            raise _client_error(str(error)) from None
        return super().register_job_definition(
            def_name,
            parameters,
            _type,
            tags,
            retry_strategy,
            container_properties,
            node_properties,
            eks_properties,
            timeout,
            platform_capabilities,
            propagate_tags,
        )

    def submit_job(
        self,
        job_name: str,
        job_def_id: str,
        job_queue: str,
        array_properties: dict[str, int],
        depends_on: list[dict[str, str]] | None = None,
        container_overrides: dict[str, Any] | None = None,
        eks_properties_override: dict[str, Any] | None = None,
        timeout: dict[str, int] | None = None,
        parameters: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[str, str, str]:
        try:
            check_job_name(job_name)
            if array_properties:
                raise BatchClientError("arrayProperties: array jobs are not run by this emulator; submit each job")
            if eks_properties_override:
                raise BatchClientError("eksPropertiesOverride: this emulator runs container jobs only")
            check_timeout(timeout)
            check_tags(tags)
            job_def = self.get_job_definition(job_def_id)
            if job_def is None or job_def.status != "ACTIVE":
                raise BatchClientError(f"Job definition {job_def_id} does not exist")
            queue = self.get_job_queue(job_queue)
            if queue is None:
                raise BatchClientError(f"Job queue {job_queue} does not exist")
            platform = _platform(job_def)
            if not any(_environment_platform(env) == platform for env in queue.environments):
                raise BatchClientError(
                    f"Job Queue {queue.name} is attached to Compute Environment that can not run Jobs with "
                    f"capability {platform}; submit to a queue of {platform} compute environments"
                )
            container = job_def.container_properties or {}
            resources = check_container_overrides(container_overrides, container, fargate=platform == "FARGATE")
        except BatchClientError as error:
            raise _client_error(str(error)) from None
        job = EmulatedJob(
            job_name,
            job_def,
            queue,
            self,
            log_backend=self.logs_backend,
            container_overrides=container_overrides,
            eks_properties_override=None,
            depends_on=depends_on,
            parameters=parameters,
            all_jobs=self._jobs,
            timeout=timeout,
            array_properties={},
            tags=tags,
        )
        job.record = JobRecord(self._spec(job, queue, resources, platform))
        self._jobs[job.job_id] = job
        self.emulation.submit(job.record)
        return job_name, job.job_id, job.arn

    def _spec(self, job: EmulatedJob, queue: JobQueue, resources: dict[str, str], platform: str) -> JobSpec:
        job_def = job.job_definition
        container = job_def.container_properties or {}
        vcpus, memory, gpus = resource_amounts(resources)
        duration = (job.timeout or job_def.timeout or {}).get("attemptDurationSeconds")
        return JobSpec(
            job_id=job.job_id,
            job_name=job.job_name,
            job_arn=job.arn,
            job_definition=job_def.name,
            job_definition_arn=job_def.arn,
            queue=queue.name,
            command=container_command(container, job.container_overrides, job.parameters),
            environment=container_environment(container, job.container_overrides),
            vcpus=vcpus,
            memory_mib=memory,
            gpus=gpus,
            attempt_duration=int(duration) if duration is not None else None,
            depends_on=tuple(str(d["jobId"]) for d in job.depends_on or ()),
            platform=platform,
        )

    def describe_jobs(self, jobs: list[str] | None) -> list[dict[str, Any]]:
        wanted = list(jobs or [])
        if len(wanted) > MAX_DESCRIBE:
            raise _client_error(f"jobs has {len(wanted)} ids: at most {MAX_DESCRIBE} jobs can be described per call")
        by_arn = {job.arn: job for job in self._jobs.values()}
        found = []
        for key in dict.fromkeys(wanted):
            job = self._jobs.get(key) or by_arn.get(key)
            if job is not None:
                found.append(job.describe())
        return found

    def list_jobs(
        self,
        job_queue_name: str | None,
        array_job_id: str | None,
        job_status: str | None = None,
        filters: list[dict[str, Any]] | None = None,
    ) -> list[Job]:
        if job_status is not None and job_status not in STATES:
            raise _client_error(f"jobStatus {job_status!r} is not valid; accepted: {' | '.join(STATES)}")
        if not job_queue_name and not array_job_id:
            raise _client_error("jobQueue, arrayJobId or multiNodeJobId must be provided")
        if not filters and job_status is None:
            job_status = "RUNNING"  # as Batch lists without a status or filter: RUNNING jobs only
        return super().list_jobs(job_queue_name, array_job_id, job_status, filters or None)

    def cancel_job(self, job_id: str, reason: str) -> None:
        self._stop(job_id, reason, cancel=True)

    def terminate_job(self, job_id: str, reason: str) -> None:
        self._stop(job_id, reason, cancel=False)

    def _stop(self, job_id: str, reason: str, *, cancel: bool) -> None:
        if not job_id:
            raise ClientException("'jobId' is a required field (cannot be an empty string)")
        if not reason:
            raise ClientException("'reason' is a required field (cannot be an empty string)")
        if isinstance(self._jobs.get(job_id), EmulatedJob):
            self.emulation.stop(job_id, reason, cancel=cancel)

    def update_compute_environment(
        self,
        compute_environment_name: str,
        state: str | None,
        compute_resources: Any | None,
        service_role: str | None,
    ) -> tuple[str, str]:
        name, arn = super().update_compute_environment(compute_environment_name, state, compute_resources, service_role)
        environment = self.get_compute_environment(arn)
        if compute_resources and environment is not None and environment.compute_resources is not None:
            # moto ignores these; the emulator's scheduler places jobs by maxvCpus, as Batch scales by them
            for key in ("minvCpus", "maxvCpus", "desiredvCpus"):
                if key in compute_resources:
                    environment.compute_resources[key] = compute_resources[key]
        return name, arn

    def queue_view(self, name: str) -> QueueView:
        """A queue's state and compute environments for the scheduler (read on the runner's thread)."""
        queue = self.get_job_queue(name)
        if queue is None:
            return QueueView(False, ())
        environments = tuple(
            EnvironmentView(
                name=env.name,
                enabled=env.state == "ENABLED",
                max_vcpus=float((env.compute_resources or {}).get("maxvCpus", float("inf"))),
                platform=_environment_platform(env),
            )
            for env in queue.environments
        )
        return QueueView(queue.state == "ENABLED", environments)

    def add_compute_environment(self, name: str, *, fargate: bool, max_vcpus: int) -> ComputeEnvironment:
        """A MANAGED compute environment, made without moto's IAM and EC2 checks (nothing is launched anyway)."""
        resources: dict[str, Any] = {
            "type": "FARGATE" if fargate else "EC2",
            "maxvCpus": max_vcpus,
            "subnets": ["subnet-emulated"],
            "securityGroupIds": ["sg-emulated"],
        }
        if not fargate:
            resources.update(minvCpus=0, desiredvCpus=0, instanceTypes=["optimal"], instanceRole="ecsInstanceRole")
        role = f"arn:aws:iam::{self.account_id}:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"
        environment = ComputeEnvironment(  # type: ignore[abstract]
            name, "MANAGED", "ENABLED", resources, role, account_id=self.account_id, region_name=self.region_name
        )
        environment.set_ecs(f"arn:aws:ecs:{self.region_name}:{self.account_id}:cluster/{name}", name)
        self._compute_environments[environment.arn] = environment
        return environment

    def add_job_queue(self, name: str, environment: ComputeEnvironment) -> JobQueue:
        order: Any = [{"order": 1, "computeEnvironment": environment.arn}]
        return self.create_job_queue(name, "1", None, "ENABLED", order)


def install_backend(account_id: str, region: str, emulation: Emulation) -> EmulatedBatchBackend:
    """Make moto serve Batch for ``account_id`` in ``region`` with the emulated backend."""
    backend = EmulatedBatchBackend(region, account_id)
    backend.emulation = emulation
    batch_backends[account_id][region] = backend
    return backend


class MotoLogSink:
    """Job output into moto's CloudWatch Logs, in the log group Batch uses."""

    def __init__(self, account_id: str, region: str) -> None:
        self._logs = logs_backends[account_id][region]
        self._logs.ensure_log_group(LOG_GROUP)

    def create_stream(self, stream: str) -> None:
        self._logs.ensure_log_stream(LOG_GROUP, stream)

    def put(self, stream: str, events: list[dict[str, object]]) -> None:
        self._logs.put_log_events(LOG_GROUP, stream, events)


def make_bucket(account_id: str, region: str, bucket: str) -> None:
    s3_backends[account_id]["aws"].create_bucket(bucket, region)


def forget_account(account_id: str, services: tuple[str, ...]) -> None:
    """Drop what moto keeps for ``account_id`` (buckets free their names for other accounts again)."""
    for service in services:
        backends = get_backend(service)  # type: ignore[call-overload]
        if account_id in backends:
            backends[account_id].reset()
            del backends[account_id]
