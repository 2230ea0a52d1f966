"""Admission of local actions against this machine's capacity (cpu, memory, GPUs).

Requests that fit are admitted at once; the rest wait their turn in arrival order (no overtaking, so a large
request is not starved by a stream of small ones). Amounts are integers (millicores, bytes, devices). A request
larger than the whole machine never waits: the executor rejects it before the run starts (or, if it only shows
up later, when it arrives), because waiting for it would hang the run forever.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import anyio

__all__ = ["Admission", "Capacity", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    cpu_millis: int = 0
    memory: int = 0
    gpus: int = 0

    def __bool__(self) -> bool:
        return bool(self.cpu_millis or self.memory or self.gpus)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What this machine offers: cores (as millicores), memory in bytes and GPUs."""

    cpu_millis: int
    memory: int
    gpus: int
    gpu_names: tuple[str, ...] = ()

    @classmethod
    def of_this_machine(cls, gpu_names: tuple[str, ...] = ()) -> Capacity:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return cls(cores * 1000, memory, len(gpu_names), gpu_names)

    def clamp(self, request: Request) -> Request:
        """The part of a request this machine can hold: cpu beyond the cores and absent GPUs run anyway
        (slower, or without GPUs), so they are admitted as the whole machine rather than blocking forever."""
        return Request(
            min(request.cpu_millis, self.cpu_millis), min(request.memory, self.memory), min(request.gpus, self.gpus)
        )


class Admission:
    """A FIFO admission gate over integer capacities; cancellation-safe."""

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._free_cpu = capacity.cpu_millis
        self._free_mem = capacity.memory
        self._free_gpu = capacity.gpus
        self._waiters: deque[tuple[Request, anyio.Event]] = deque()

    def _fits(self, r: Request) -> bool:
        return r.cpu_millis <= self._free_cpu and r.memory <= self._free_mem and r.gpus <= self._free_gpu

    def _take(self, r: Request) -> None:
        self._free_cpu -= r.cpu_millis
        self._free_mem -= r.memory
        self._free_gpu -= r.gpus

    def can_admit_now(self, request: Request) -> bool:
        return not self._waiters and self._fits(request)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, request: Request) -> None:
        """Wait until ``request`` fits and every earlier waiter has been admitted, then take it."""
        if not request:
            return
        if not self._waiters and self._fits(request):
            self._take(request)
            return
        event = anyio.Event()
        entry = (request, event)
        self._waiters.append(entry)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # admitted while being cancelled: give it back
                self.release(request)
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, request: Request) -> None:
        if not request:
            return
        self._free_cpu += request.cpu_millis
        self._free_mem += request.memory
        self._free_gpu += request.gpus
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            request, event = self._waiters.popleft()
            self._take(request)
            event.set()
