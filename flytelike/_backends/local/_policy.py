"""How a local run treats Resources: what can never fit fails before anything starts; cpu beyond the cores and
GPUs this machine lacks warn once (or fail, in strict mode); ``ignore`` runs everything anyway.

Errors state the facts in structured fields (task, resource, requested, capacity); how to get past them (run it
elsewhere, or anyway) is phrased by the caller that shows them, such as the CLI, which knows its own flags.
"""

from __future__ import annotations

import warnings

from flytelike._backends.local._admission import Request
from flytelike._backends.local._capacity import Capacity
from flytelike._config import ResourcePolicy
from flytelike.errors import AdmissionError, CapacityWarning

__all__ = ["ResourcePolicy", "ResourceRules"]
_GiB = 1024**3


def _gib(n: int) -> str:
    return f"{n / _GiB:.1f} GiB"


class ResourceRules:
    """The resource policy of one local backend, over this machine's capacity; warns once per task and resource."""

    def __init__(self, capacity: Capacity, policy: ResourcePolicy) -> None:
        self.capacity = capacity
        self.policy = policy
        self._warned: set[tuple[str, str]] = set()

    def request(self, task: str, request: Request, action: str = "") -> Request:
        """The request to admit here, after the policy.

        Raises:
            AdmissionError: it can never fit (memory), or strict mode refuses cpu/GPUs beyond this machine.
        """
        cap = self.capacity
        if self.policy == "ignore":
            return cap.clamp(request)
        where = f"task {task}" + (f" (action {action})" if action else "")
        if request.memory > cap.memory:
            raise AdmissionError(
                f"{where} requests {_gib(request.memory)} of memory but this machine has {_gib(cap.memory)}; "
                "it can never fit",
                task=task,
                action=action,
                resource="memory",
                requested=request.memory,
                capacity=cap.memory,
            )
        problems: list[tuple[str, str, int, int]] = []
        if request.cpu_millis > cap.cpu_millis:
            problems.append(
                (
                    "cpu",
                    f"{where} requests {request.cpu_millis / 1000:g} cpu but this machine has "
                    f"{cap.cpu_millis / 1000:g} cores; it will run slower",
                    request.cpu_millis,
                    cap.cpu_millis,
                )
            )
        if request.gpus > cap.gpus:
            problems.append(
                (
                    "gpu",
                    f"{where} requests {request.gpus} GPU(s) but this machine has {cap.gpus}; it runs without them",
                    request.gpus,
                    cap.gpus,
                )
            )
        for resource, problem, requested, capacity in problems:
            if self.policy == "strict":
                raise AdmissionError(
                    f"{problem} (strict mode is on)",
                    task=task,
                    action=action,
                    resource=resource,
                    requested=requested,
                    capacity=capacity,
                    strict=True,
                )
            if (task, resource) not in self._warned:
                self._warned.add((task, resource))
                warnings.warn(f"{problem}.", CapacityWarning, stacklevel=2)
        return cap.clamp(request)
