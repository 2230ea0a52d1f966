"""What the Batch backend looks up once and keeps: each queue's compute environment type, each container spec's job
definition, and the jobs on a queue of each run taken over (so that its resumed attempts follow them)."""

from __future__ import annotations

import logging
import re
from typing import Any, NamedTuple

from flytelike._backends._once import Once
from flytelike._backends.batch._calls import AwsCalls
from flytelike._backends.batch._spec import Compute, job_definition
from flytelike._config import BatchSettings
from flytelike._executor import ExecTask
from flytelike.errors import BackendError

__all__ = ["Compute", "JobLookups"]

_log = logging.getLogger("flytelike.batch")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


class _Named(NamedTuple):
    """The jobs of one name on a queue: the newest one's id, and how many there are."""

    job_id: str
    created: int
    jobs: int


class JobLookups:
    """Look-ups by key, each made once per backend (concurrent callers share it; a failure is tried again).

    Attributes:
        registered: job definitions this backend registered (the others existed already).
    """

    def __init__(self, calls: AwsCalls, settings: BatchSettings) -> None:
        self._calls = calls
        self._settings = settings
        self._computes: Once[Compute] = Once()
        self._definitions: Once[str] = Once()
        self._runs: Once[dict[str, _Named]] = Once()
        self.registered = 0

    # --- compute environment types ------------------------------------------------------------------------------

    def known_compute(self, queue: str) -> Compute | None:
        """The queue's type if it was looked up already."""
        return self._computes.known(queue)

    async def compute(self, queue: str) -> Compute:
        """``FARGATE`` or ``EC2``: the type of the queue's compute environments (DescribeJobQueues, then
        DescribeComputeEnvironments).

        Raises:
            BackendError: no such queue, or it mixes EC2 and Fargate environments.
        """
        return await self._computes.get(queue, lambda: self._compute(queue))

    async def _compute(self, queue: str) -> Compute:
        answer = await self._calls.call("batch", "DescribeJobQueues", {"jobQueues": [queue]})
        queues = answer.get("jobQueues", [])
        if not queues:
            raise BackendError(f"AWS Batch has no job queue {queue!r} (set [batch] queue or fl.Batch(queue=...))")
        order = sorted(queues[0].get("computeEnvironmentOrder", []), key=lambda e: e.get("order", 0))
        arns = [e["computeEnvironment"] for e in order]
        if not arns:
            raise BackendError(f"the Batch job queue {queue!r} has no compute environment")
        found = await self._calls.call("batch", "DescribeComputeEnvironments", {"computeEnvironments": arns})
        kinds = {
            "FARGATE" if str((e.get("computeResources") or {}).get("type", "EC2")).startswith("FARGATE") else "EC2"
            for e in found.get("computeEnvironments", [])
        }
        if len(kinds) != 1:
            raise BackendError(
                f"the Batch job queue {queue!r} has compute environments of types {sorted(kinds) or 'unknown'}; "
                "flytelike needs one type per queue (EC2 or FARGATE)"
            )
        kind: Compute = "FARGATE" if kinds == {"FARGATE"} else "EC2"
        return kind

    # --- job definitions ----------------------------------------------------------------------------------------

    async def definition(self, task: ExecTask, compute: Compute) -> str:
        """The ARN of the task's job definition: an active one of its name, else one registered now."""
        body = job_definition(task, self._settings, compute)
        name = body["jobDefinitionName"]
        return await self._definitions.get(name, lambda: self._definition(body))

    async def _definition(self, body: dict[str, Any]) -> str:
        name = body["jobDefinitionName"]
        found = await self._calls.call(
            "batch", "DescribeJobDefinitions", {"jobDefinitionName": name, "status": "ACTIVE"}
        )
        # The name is a digest of the spec, so any active revision has the same spec; the latest is taken.
        active = [d for d in found.get("jobDefinitions", []) if d.get("status", "ACTIVE") == "ACTIVE"]
        if active:
            return str(max(active, key=lambda d: int(d.get("revision", 0)))["jobDefinitionArn"])
        registered = await self._calls.call("batch", "RegisterJobDefinition", body)
        self.registered += 1
        return str(registered["jobDefinitionArn"])

    # --- jobs by name -------------------------------------------------------------------------------------------

    async def existing(self, run: str, queue: str, name: str) -> str | None:
        """The id of the job named ``name`` that an earlier controller of ``run`` submitted to ``queue``, if any.

        One ListJobs (JOB_NAME filter ``fl-<run>-*``, every status) per run and queue tells them all, so a run taken
        over pays one call (a page per 100 of its jobs) however many of its attempts are resumed. Of several jobs of
        the name (one attempt submitted twice, which should not happen) the newest is taken, with a warning.
        """
        prefix = _BAD_NAME_CHARS.sub("-", f"fl-{run}-")[:100]
        jobs = await self._runs.get(f"{queue}\0{prefix}", lambda: self._list(queue, prefix + "*"))
        found = jobs.get(name.lower())
        if found is None:
            return None
        if found.jobs > 1:
            _log.warning(
                "%d Batch jobs on queue %s are named %s; following the newest, %s",
                found.jobs,
                queue,
                name,
                found.job_id,
            )
        return found.job_id

    async def find(self, queue: str, name: str) -> str | None:
        """The id of the latest job named ``name`` on ``queue`` (a ListJobs with an exact JOB_NAME filter)."""
        found = (await self._list(queue, name)).get(name.lower())
        return None if found is None else found.job_id

    async def _list(self, queue: str, pattern: str) -> dict[str, _Named]:
        params: dict[str, Any] = {
            "jobQueue": queue,
            "filters": [{"name": "JOB_NAME", "values": [pattern]}],
            "maxResults": 100,  # the most ListJobs gives a page with filters
        }
        named: dict[str, _Named] = {}
        while True:
            page = await self._calls.call("batch", "ListJobs", params)
            for job in page.get("jobSummaryList", []):
                key = str(job.get("jobName", "")).lower()  # Batch's JOB_NAME filter ignores case too
                created = int(job.get("createdAt", 0))
                seen = named.get(key)
                if seen is None:
                    named[key] = _Named(str(job["jobId"]), created, 1)
                elif created >= seen.created:
                    named[key] = _Named(str(job["jobId"]), created, seen.jobs + 1)
                else:
                    named[key] = seen._replace(jobs=seen.jobs + 1)
            token = page.get("nextToken")
            if not token:
                return named
            params["nextToken"] = token
