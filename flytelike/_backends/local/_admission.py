"""Admission of local actions against this machine's capacity (cpu, memory, GPUs).

Requests that fit are admitted at once; the rest wait their turn in arrival order (no overtaking, so a large
request is not starved by a stream of small ones). Amounts are integers (millicores, bytes, devices). A request
larger than the whole machine never waits: the resource policy rejects it before the run starts (or, if it only shows
up later, when it arrives), because waiting for it would hang the run forever.

An admitted request is held as a :class:`AdmissionLease`: suspended while its action only waits for children,
resumed (in turn, like any other request) before the action continues.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import anyio

__all__ = ["Admission", "AdmissionLease", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    cpu_millis: int = 0
    memory: int = 0
    gpus: int = 0

    def __bool__(self) -> bool:
        return bool(self.cpu_millis or self.memory or self.gpus)


class Admission:
    """A FIFO admission gate over integer capacities; cancellation-safe."""

    def __init__(self, cpu_millis: int, memory: int, gpus: int) -> None:
        self._free_cpu = cpu_millis
        self._free_mem = memory
        self._free_gpu = gpus
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


class AdmissionLease:
    """A request admitted by an :class:`Admission`; the executor's ``Lease``."""

    __slots__ = ("_gate", "_held", "_request")

    def __init__(self, gate: Admission, request: Request) -> None:
        self._gate = gate
        self._request = request
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate.release(self._request)

    def suspend(self) -> None:
        self.release()

    async def resume(self) -> None:
        if not self._held:
            await self._gate.acquire(self._request)
            self._held = True
