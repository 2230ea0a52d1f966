"""The executor's own view of a task, compiled once from its TaskTemplate.

The executor never sees SDK objects: it reads everything it needs from the protobuf template into plain, fast
fields here, so that the per-action path does no protobuf or Decimal work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flytelike._proto.core.v1 import tasks_pb2
from flytelike._quantity import Quantity
from flytelike._retries import escalate_memory, retry_delay

__all__ = ["ExecTask"]

_R = tasks_pb2.Resources


def _entries(entries: Any) -> dict[int, Quantity]:
    return {e.name: Quantity.parse(e.value, field="template.resources") for e in entries}


@dataclass(frozen=True, slots=True)
class ExecTask:
    """What the executor needs of one task version, read from its template.

    Amounts are integers in the smallest unit that matters locally (millicores, bytes, whole devices) so that
    admission is plain integer arithmetic.
    """

    key: str
    name: str
    version: str
    template: tasks_pb2.TaskTemplate
    cpu_millis: int
    cpu_limit_millis: int
    memory: int
    memory_limit: int
    gpus: int
    gpu_device: str
    retries: int
    backoff_initial: float
    backoff_multiplier: float
    backoff_max: float | None
    oom_factor: float | None
    oom_cap: int | None
    timeout: float | None
    cache: bool
    cache_version: str
    cache_ttl: float | None
    cache_ignored: frozenset[str]
    platform: str
    process: bool
    # Only read when set: a task with no deadline and a plain cache never looks at them.
    deadline: float | None = None
    cache_overwrite: bool = False
    cache_serialize: bool = False
    cache_salt: str = ""
    outputs: frozenset[str] = frozenset()

    @classmethod
    def from_template(cls, template: tasks_pb2.TaskTemplate) -> ExecTask:
        res = template.container.resources
        req, lim = _entries(res.requests), _entries(res.limits)

        def whole(q: Quantity | None, unit: int = 1) -> int:
            return 0 if q is None else q.ceil_to(unit)

        md = template.metadata
        rp = md.retries
        backoff = rp.backoff if rp.HasField("backoff") else None
        oom = rp.oom_escalation if rp.HasField("oom_escalation") else None
        kind = template.platform.WhichOneof("kind") if template.HasField("platform") else None
        accel = template.extended_resources.gpu_accelerator
        return cls(
            key=f"{template.id.name}@{template.id.version}",
            name=template.id.name,
            version=template.id.version,
            template=template,
            cpu_millis=int(req[_R.CPU].milli()) if _R.CPU in req else 0,
            cpu_limit_millis=int(lim[_R.CPU].milli()) if _R.CPU in lim else 0,
            memory=whole(req.get(_R.MEMORY)),
            memory_limit=whole(lim.get(_R.MEMORY)),
            gpus=whole(req.get(_R.GPU)),
            gpu_device=accel.device,
            retries=rp.retries,
            backoff_initial=backoff.initial_delay.ToTimedelta().total_seconds() if backoff else 0.0,
            backoff_multiplier=backoff.multiplier if backoff else 1.0,
            backoff_max=(
                backoff.max_delay.ToTimedelta().total_seconds() if backoff and backoff.HasField("max_delay") else None
            ),
            oom_factor=oom.memory_factor if oom else None,
            oom_cap=Quantity.parse(oom.memory_cap).ceil_to(1) if oom and oom.memory_cap else None,
            timeout=md.timeout.ToTimedelta().total_seconds() if md.HasField("timeout") else None,
            cache=md.cache_enabled,
            cache_version=md.cache_version,
            cache_ttl=md.cache_ttl.ToTimedelta().total_seconds() if md.HasField("cache_ttl") else None,
            cache_ignored=frozenset(md.cache_ignored_inputs),
            platform=kind or "",
            process=kind == "local" and template.platform.local.process,
            deadline=md.deadline.ToTimedelta().total_seconds() if md.HasField("deadline") else None,
            cache_overwrite=md.cache_overwrite,
            cache_serialize=md.cache_serializable,
            cache_salt=md.cache_salt,
            outputs=frozenset(v.name for v in template.interface.outputs.variables),
        )

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return retry_delay(
            retry, initial=self.backoff_initial, multiplier=self.backoff_multiplier, maximum=self.backoff_max
        )

    def escalated_memory(self, memory: int) -> int:
        """Memory for the attempt after an out-of-memory failure at ``memory`` bytes."""
        return escalate_memory(memory, self.oom_factor, self.oom_cap)
