"""The moto internals the emulator relies on, checked before it starts: a moto release that renames a class,
changes a signature or stops reading the account header fails here, naming what changed, instead of making jobs
misbehave later."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["MOTO_VERSION", "MotoChangedError", "check_moto", "moto_problems"]

MOTO_VERSION = "5.2.5"

# (module, qualified name) -> the parameters its signature must have, in order
_SIGNATURES: dict[tuple[str, str], tuple[str, ...]] = {
    ("moto.batch.models", "Job.__init__"): (
        "self",
        "name",
        "job_def",
        "job_queue",
        "backend",
        "log_backend",
        "container_overrides",
        "eks_properties_override",
        "depends_on",
        "parameters",
        "all_jobs",
        "timeout",
        "array_properties",
        "provided_job_id",
        "tags",
    ),
    ("moto.batch.models", "BatchBackend.__init__"): ("self", "region_name", "account_id"),
    ("moto.batch.models", "BatchBackend.submit_job"): (
        "self",
        "job_name",
        "job_def_id",
        "job_queue",
        "array_properties",
        "depends_on",
        "container_overrides",
        "eks_properties_override",
        "timeout",
        "parameters",
        "tags",
    ),
    ("moto.batch.models", "BatchBackend.register_job_definition"): (
        "self",
        "def_name",
        "parameters",
        "_type",
        "tags",
        "retry_strategy",
        "container_properties",
        "node_properties",
        "eks_properties",
        "timeout",
        "platform_capabilities",
        "propagate_tags",
    ),
    ("moto.batch.models", "BatchBackend.describe_jobs"): ("self", "jobs"),
    ("moto.batch.models", "BatchBackend.list_jobs"): (
        "self",
        "job_queue_name",
        "array_job_id",
        "job_status",
        "filters",
    ),
    ("moto.batch.models", "BatchBackend.cancel_job"): ("self", "job_id", "reason"),
    ("moto.batch.models", "BatchBackend.update_compute_environment"): (
        "self",
        "compute_environment_name",
        "state",
        "compute_resources",
        "service_role",
    ),
    ("moto.batch.models", "BatchBackend.terminate_job"): ("self", "job_id", "reason"),
    ("moto.batch.models", "BatchBackend.create_job_queue"): (
        "self",
        "queue_name",
        "priority",
        "schedule_policy",
        "state",
        "compute_env_order",
        "tags",
    ),
    ("moto.batch.models", "ComputeEnvironment.__init__"): (
        "self",
        "compute_environment_name",
        "_type",
        "state",
        "compute_resources",
        "service_role",
        "account_id",
        "region_name",
    ),
    ("moto.logs.models", "LogsBackend.ensure_log_group"): ("self", "log_group_name"),
    ("moto.logs.models", "LogsBackend.ensure_log_stream"): ("self", "log_group_name", "log_stream_name"),
    ("moto.logs.models", "LogsBackend.put_log_events"): ("self", "log_group_name", "log_stream_name", "log_events"),
    ("moto.s3.models", "S3Backend.create_bucket"): ("self", "bucket_name", "region_name", "bucket_namespace"),
}

# (module, attribute) that must exist
_NAMES = (
    ("moto.batch.models", "batch_backends"),
    ("moto.batch.models", "JobDefinition"),
    ("moto.batch.models", "JobQueue"),
    ("moto.batch.responses", "batch_backends"),
    ("moto.batch.exceptions", "ClientException"),
    ("moto.logs.models", "logs_backends"),
    ("moto.s3.models", "s3_backends"),
    ("moto.moto_server.werkzeug_app", "DomainDispatcherApplication"),
    ("moto.moto_server.werkzeug_app", "create_backend_app"),
    ("moto.moto_server.werkzeug_app", "MotoRequestHandler"),
)

# (module, qualified name, a text its source must contain, why)
_SOURCES = (
    (
        "moto.core.responses",
        "BaseResponse.get_current_account",
        "x-moto-account-id",
        "the emulator pins its requests to its own account with the x-moto-account-id header",
    ),
    (
        "moto.batch.responses",
        "BatchResponse.batch_backend",
        "batch_backends[self.current_account][self.region]",
        "the emulated backend is installed in batch_backends[account][region]",
    ),
    (
        "moto.batch.responses",
        "BatchResponse.submitjob",
        "self.batch_backend.submit_job(",
        "SubmitJob must reach the backend's submit_job, which the emulator replaces",
    ),
)


# attributes the emulated backend reads or writes, by the constructor that sets them
_ATTRIBUTES = (
    ("moto.batch.models", "BatchBackend.__init__", ("self._jobs", "self._compute_environments", "self._job_queues")),
    (
        "moto.batch.models",
        "Job.__init__",
        (
            "self.job_id",
            "self.job_name",
            "self.job_definition",
            "self.job_queue",
            "self.container_overrides",
            "self.depends_on",
            "self.parameters",
            "self.timeout",
            "self.arn",
        ),
    ),
    ("moto.batch.models", "JobQueue.__init__", ("self.environments", "self.state", "self.arn", "self.name")),
    ("moto.batch.models", "ComputeEnvironment.__init__", ("self.compute_resources", "self.state", "self.name")),
    (
        "moto.batch.models",
        "JobDefinition.__init__",
        ("self.container_properties", "self.platform_capabilities", "self.timeout", "self.status", "self.parameters"),
    ),
)


class MotoChangedError(RuntimeError):
    """moto is not the version, or no longer has the internals, that the Batch emulator was written against."""


def _resolve(module_name: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _check(problems: list[str], what: str, probe: Callable[[], str | None]) -> None:
    try:
        problem = probe()
    except (ImportError, AttributeError) as error:
        problem = f"{what} is gone ({error})"
    if problem:
        problems.append(problem)


def moto_problems() -> list[str]:
    """What differs from the moto the emulator expects (empty: nothing)."""
    problems: list[str] = []
    try:
        found = version("moto")
    except PackageNotFoundError:
        return ["moto is not installed: pip install 'flytelike[emulators]'"]
    if found != MOTO_VERSION:
        problems.append(f"moto {found} is installed; the emulator is written against moto=={MOTO_VERSION}")
    for (module_name, qualname), expected in _SIGNATURES.items():

        def signature(module_name: str = module_name, qualname: str = qualname, expected: Any = expected) -> str | None:
            target = _resolve(module_name, qualname)
            names = tuple(inspect.signature(target).parameters)
            if names != expected:
                return f"{module_name}.{qualname} now takes ({', '.join(names)}), not ({', '.join(expected)})"
            return None

        _check(problems, f"{module_name}.{qualname}", signature)
    for module_name, name in _NAMES:

        def exists(module_name: str = module_name, name: str = name) -> str | None:
            _resolve(module_name, name)
            return None

        _check(problems, f"{module_name}.{name}", exists)
    for module_name, qualname, text, why in _SOURCES:

        def source(
            module_name: str = module_name, qualname: str = qualname, text: str = text, why: str = why
        ) -> str | None:
            target = _resolve(module_name, qualname)
            if isinstance(target, property):
                target = target.fget
            if text not in inspect.getsource(target):
                return f"{module_name}.{qualname} no longer contains {text!r}: {why}"
            return None

        _check(problems, f"{module_name}.{qualname}", source)
    for module_name, qualname, attributes in _ATTRIBUTES:

        def assigned(
            module_name: str = module_name, qualname: str = qualname, attributes: Any = attributes
        ) -> str | None:
            text = inspect.getsource(_resolve(module_name, qualname))
            missing = [a for a in attributes if f"{a} =" not in text and f"{a}:" not in text]
            if missing:
                return f"{module_name}.{qualname} no longer sets {', '.join(missing)}, which the emulator uses"
            return None

        _check(problems, f"{module_name}.{qualname}", assigned)
    return problems


def check_moto() -> None:
    """Raise :class:`MotoChangedError` listing every difference, if there is any."""
    problems = moto_problems()
    if problems:
        raise MotoChangedError("the Batch emulator cannot run on this moto:\n  - " + "\n  - ".join(problems))
