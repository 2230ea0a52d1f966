"""The AWS Batch backend (design.md §4.6, ``docs/batch.md``): one job per attempt through aioboto3, one shared
DescribeJobs poll, EC2 and Fargate rules checked before anything is submitted.

aioboto3 is imported when the backend is entered; the request bodies (:func:`show_requests`) need no client.
"""

from __future__ import annotations

from typing import Any

from flytelike._backends._input import BackendInput
from flytelike._backends.batch._backend import BatchBackend
from flytelike._backends.batch._spec import (
    TAG_ACTION,
    TAG_ATTEMPT,
    TAG_RUN,
    Compute,
    check_task,
    job_definition,
    job_name,
    submit_job,
)
from flytelike._config import Settings
from flytelike._executor import ExecTask

__all__ = ["BatchBackend", "Compute", "from_input", "show_requests"]


def from_input(spec: BackendInput) -> BatchBackend:
    """The backend of a runtime (what ``load_backend("batch")`` returns)."""
    return BatchBackend.from_input(spec)


def show_requests(task: ExecTask, settings: Settings, compute: Compute = "EC2") -> dict[str, Any]:
    """The RegisterJobDefinition and SubmitJob bodies the backend would send for the task's first attempt.

    Values only known when an attempt starts (the run id, the store's URLs of its bundle and inputs) are shown as
    ``<run>`` (``RUN`` in the job's name), ``<bundle>`` ...; nothing is sent or uploaded.

    Raises:
        SpecError: Batch would refuse the task (see :func:`check_task`).
    """
    batch = settings.batch
    check_task(task, batch, compute)
    definition = job_definition(task, batch, compute)
    run, action, attempt = "<run>", "0", 1
    args = [
        *("--run", run, "--action", action, "--attempt", str(attempt)),
        *("--bundle", "<bundle>", "--inputs", "<inputs>", "--output-prefix", "<output-prefix>"),
        *("--task", f"<module>:{task.name}", "--template", "<template>", "--platform", "batch"),
    ]
    env = {kv.key: kv.value for kv in task.template.container.env}
    env["FLYTELIKE_STORE__URL"] = settings.store.url
    submit = submit_job(
        task,
        batch,
        compute,
        name=job_name("RUN", action, attempt),
        definition=definition["jobDefinitionName"],
        command=[*batch.entrypoint, *args],
        environment=env,
        memory=task.memory_limit or task.memory,
        tags={TAG_RUN: run, TAG_ACTION: action, TAG_ATTEMPT: str(attempt)},
    )
    return {"jobDefinition": definition, "submitJob": submit}
