"""When a job may leave a state: test holds on any state before RUNNING, and the capacity model that keeps a job
RUNNABLE until a compute environment of its queue has room for its vCPUs.

The capacity model is Batch's in miniature: a queue tries its compute environments in order; an environment (and
the queue) must be ENABLED and its running jobs' vCPUs plus the job's must not pass its ``maxvCpus``. A job that
needs more vCPUs than any environment of its queue can ever give stays RUNNABLE with the reason Batch reports for
it. All of this runs on the emulator's event loop thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from flytelike.testing.batch._record import JobRecord

__all__ = ["HOLDABLE", "TOO_LARGE", "EnvironmentView", "Holds", "QueueView", "Scheduler"]

TOO_LARGE = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than that "
    "can be met by the CE(s) attached to the job queue."
)
POLL_SECONDS = 0.05
"""How often waiting jobs are placed again, so changes made through the API (maxvCpus, state) are seen."""


HOLD_POLL_SECONDS = 0.02
HOLDABLE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")


@dataclass(frozen=True, slots=True)
class EnvironmentView:
    """A compute environment as the scheduler needs it."""

    name: str
    enabled: bool
    max_vcpus: float
    platform: str


@dataclass(frozen=True, slots=True)
class QueueView:
    """A job queue: whether it is ENABLED, and its compute environments in order."""

    enabled: bool
    environments: tuple[EnvironmentView, ...]


class Holds:
    """States in which jobs wait until released (a test hook: ``hold("RUNNABLE")`` makes jobs stay RUNNABLE).

    Holds are set and released from any thread; waiting jobs look again every HOLD_POLL_SECONDS.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def hold(self, status: str) -> None:
        if status not in HOLDABLE:
            raise ValueError(f"cannot hold jobs in {status!r}: give one of {', '.join(HOLDABLE)}")
        with self._lock:
            self._held.add(status)

    def release(self, status: str | None = None) -> None:
        """Let the jobs waiting in ``status`` (or in every held state) go on."""
        with self._lock:
            if status is None:
                self._held.clear()
            else:
                self._held.discard(status)

    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    async def wait(self, status: str) -> None:
        while status in self.held():
            await anyio.sleep(HOLD_POLL_SECONDS)


class Scheduler:
    """Places RUNNABLE jobs on compute environments with free vCPUs, first come first served."""

    def __init__(self, queues: Callable[[str], QueueView]) -> None:
        self._queues = queues
        self._waiting: list[tuple[JobRecord, anyio.Event]] = []
        self._used: dict[str, float] = {}
        self._placed: dict[JobRecord, str] = {}
        self._wake = anyio.Event()

    def used(self, environment: str) -> float:
        """vCPUs of the jobs now STARTING or RUNNING in ``environment``."""
        return self._used.get(environment, 0.0)

    async def place(self, job: JobRecord) -> str:
        """Wait until ``job`` fits somewhere; returns the compute environment's name, its vCPUs now taken."""
        placed = anyio.Event()
        entry = (job, placed)
        self._waiting.append(entry)
        self.wake()
        try:
            await placed.wait()
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)
        return self._placed[job]

    def release(self, job: JobRecord) -> None:
        """Give back the vCPUs of a job that ended (or was stopped after it was placed)."""
        environment = self._placed.pop(job, None)
        if environment is not None:
            self._used[environment] = max(0.0, self._used.get(environment, 0.0) - job.spec.vcpus)
            self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Place waiting jobs whenever something changes, and every POLL_SECONDS."""
        while True:
            self._dispatch()
            with anyio.move_on_after(POLL_SECONDS):
                await self._wake.wait()
            self._wake = anyio.Event()

    def _dispatch(self) -> None:
        for job, placed in list(self._waiting):
            queue = self._queues(job.spec.queue)
            target = None
            could_fit = False
            for environment in queue.environments:
                could_fit = could_fit or environment.max_vcpus >= job.spec.vcpus
                free = environment.max_vcpus - self._used.get(environment.name, 0.0)
                if queue.enabled and environment.enabled and job.spec.vcpus <= free:
                    target = environment.name
                    break
            if target is None:
                job.set_reason(None if could_fit else TOO_LARGE)
                continue
            job.set_reason(None)
            self._waiting.remove((job, placed))
            self._used[target] = self._used.get(target, 0.0) + job.spec.vcpus
            self._placed[job] = target
            placed.set()
