"""Places in the worker pool: ``size`` jobs run at once; the others wait in order, or queue behind a running job.

A job needs a place to run. When none is free, a job without a memory limit may instead be queued behind a job that
runs on a worker (its ``Start`` is written to that worker's pipe at once): the worker starts it the moment it sends
the previous job's ``Done``, without waiting for the pool to hear of it and answer, and the queued job takes over
the finished job's place. This keeps each worker busy while the pool handles the previous answer, which is most of
the cost of a short task. Only jobs that cannot hold a worker hostage queue, and only behind such jobs: neither has
a memory limit (whose kill would take the queued job with it), and the running one is not waiting for tasks it
called (which could take long). A queued job whose worker dies before starting it never ran, and is run elsewhere.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Places", "Turn"]

W = TypeVar("W")


@dataclass(eq=False)
class Turn:
    """A job queued behind the one a worker runs. ``started`` is True once the worker has started it, False if it
    never will (its worker died first, or it was withdrawn); ``cancelled`` when nobody waits for it any more;
    ``withdrawing`` once the pool asked the worker to drop it."""

    started: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    action_id: str = ""
    attempt: int = 0
    cancelled: bool = False
    withdrawing: bool = False


Grant = tuple[W, Turn]


@dataclass(eq=False)
class _Waiter(Generic[W]):
    future: asyncio.Future[Grant[W] | None]
    queueable: bool


class Places(Generic[W]):
    """``size`` places, handed out in order; also hands out turns behind running workers.

    Args:
        size: number of places.
        prefetch: finds a worker a job may queue behind and reserves it (sets its next turn), or returns None.
        unused: gives back a reserved turn that its job did not take (it was cancelled as it was granted).
        freed: called when a place is given back and no job waits for it (a queued job may want it).
    """

    def __init__(
        self,
        size: int,
        *,
        prefetch: Callable[[], Grant[W] | None],
        unused: Callable[[Grant[W]], None],
        freed: Callable[[], None],
    ) -> None:
        self.free = size
        self._prefetch = prefetch
        self._unused = unused
        self._freed = freed
        self._waiters: deque[_Waiter[W]] = deque()

    @property
    def waiting(self) -> bool:
        return bool(self._waiters)

    async def acquire(self) -> None:
        """Take a place, waiting in order for one."""
        granted = await self.claim(queueable=False)
        assert granted is None

    def release(self) -> None:
        """Give a place back: to the first job waiting, else to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                return
        self.free += 1
        self._freed()

    async def claim(self, *, queueable: bool) -> Grant[W] | None:
        """A place (None), or, for a ``queueable`` job when no place is free, a turn behind a running worker."""
        if not self._waiters:
            if self.free > 0:
                self.free -= 1
                return None
            if queueable and (grant := self._prefetch()) is not None:
                return grant
        waiter: _Waiter[W] = _Waiter(asyncio.get_running_loop().create_future(), queueable)
        self._waiters.append(waiter)
        try:
            return await waiter.future
        except BaseException:
            future = waiter.future
            if future.done() and not future.cancelled():
                # Granted just as the job was cancelled: pass it on.
                grant = future.result()
                if grant is None:
                    self.release()
                else:
                    self._unused(grant)
            else:
                future.cancel()
                # Done futures are skipped when places are handed out; drop this one now so it costs nothing.
                self._waiters.remove(waiter)
            raise

    def offer(self, grant: Grant[W]) -> bool:
        """Give a turn behind a worker to the first queueable job waiting; False if there is none."""
        for waiter in self._waiters:
            if waiter.queueable and not waiter.future.done():
                self._waiters.remove(waiter)
                waiter.future.set_result(grant)
                return True
        return False
