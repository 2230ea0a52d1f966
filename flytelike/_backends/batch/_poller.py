"""One DescribeJobs poll for every active job of a backend, 100 ids a call, at an adaptive interval.

The interval is the shortest (``[batch] poll_interval_min``) while jobs are being submitted, starting or ending,
grows while jobs only run, and grows to the longest (``poll_interval_max``) while every job waits in RUNNABLE,
where nothing can change quickly. A job submitted while the poller sleeps long shortens that sleep to the
shortest interval, so it is first seen soon, together with the others submitted meanwhile.

The poll has no task of its own (a backend's lifetime is not a task's scope): one of the attempts waiting for a
change runs it while it waits, and when that one's job changes it hands the poll on to another waiting attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import anyio

from flytelike._backends.batch._calls import AwsCalls

__all__ = ["BATCH", "JobPoller", "Watched"]

BATCH = 100  # ids per DescribeJobs call, the API's maximum
_MOVING = frozenset({"SUBMITTED", "PENDING", "STARTING"})
_ENDED = frozenset({"SUCCEEDED", "FAILED"})


class Watched:
    """What the poller last saw of one job, and a way to wait for the next change."""

    __slots__ = ("_changed", "job", "job_id", "seen_at")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.job: dict[str, Any] | None = None
        self.seen_at: float | None = None  # anyio time of the last poll that found the job
        self._changed = anyio.Event()

    def _update(self, job: dict[str, Any], now: float) -> bool:
        old = self.job
        self.job, self.seen_at = job, now
        if old is not None and _key(old) == _key(job):
            return False
        self._changed.set()
        self._changed = anyio.Event()
        return True

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def changed(self) -> None:
        """Wait until the job's status (or its reason) changes."""
        await self._changed.wait()


def _key(job: dict[str, Any]) -> tuple[Any, ...]:
    return (job.get("status"), job.get("statusReason"))


class JobPoller:
    """Polls the jobs it watches (see the module's docstring); runs in the backend's task group.

    Args:
        calls: the backend's AWS calls (the poll takes its tokens from the same bucket).
        minimum, maximum: bounds of the interval in seconds.
        on_error: told of a poll that failed (the next poll tries again), and of the next that did not (None).
    """

    def __init__(
        self, calls: AwsCalls, *, minimum: float, maximum: float, on_error: Callable[[BaseException | None], None]
    ) -> None:
        self._calls = calls
        self.minimum, self.maximum = minimum, maximum
        self.interval = minimum
        self._jobs: dict[str, Watched] = {}
        self._added = anyio.Event()
        self._fresh = False
        self._polling = False
        self._on_error = on_error
        self.polls = 0  # completed polls, for tests and benchmarks
        self.largest_poll = 0  # the most DescribeJobs calls one poll made

    def watch(self, job_id: str) -> Watched:
        """Start watching ``job_id`` (again: the same object)."""
        watched = self._jobs.get(job_id)
        if watched is None:
            watched = self._jobs[job_id] = Watched(job_id)
            self._fresh = True
            self._added.set()
        return watched

    def forget(self, job_id: str) -> None:
        if self._jobs.pop(job_id, None) is not None:
            self._hand_on()

    def __len__(self) -> int:
        return len(self._jobs)

    async def wait(self, watched: Watched) -> None:
        """Until ``watched``'s job changes; polls for every job meanwhile unless another waiter already does."""
        if self._polling:
            await watched.changed()
            return
        self._polling = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._loop)
                await watched.changed()
                tg.cancel_scope.cancel()
        finally:
            self._polling = False
            self._hand_on()

    def _hand_on(self) -> None:
        """Wake one other job's waiter, which takes the poll on when it waits again (or hands it on if its
        attempt ends instead)."""
        if self._polling or not self._jobs:
            return
        # Preferably one whose job has not ended: its attempt waits again soon, where an ended one first reads the
        # store (and then hands the poll on when it forgets its job).
        waiting = (w for w in self._jobs.values() if w.job is None or w.job.get("status") not in _ENDED)
        next(waiting, next(iter(self._jobs.values())))._wake()

    async def _loop(self) -> None:
        while True:
            self._added = anyio.Event()
            with anyio.move_on_after(self.interval):
                await self._added.wait()
            if self._added.is_set() and self.interval > self.minimum:
                # A new job while sleeping long: look soon, leaving a moment for more submissions to join it.
                await anyio.sleep(self.minimum)
            try:
                changed = await self.poll()
            except Exception as e:
                self._on_error(e)
                for watched in list(self._jobs.values()):
                    watched._wake()  # so that each sees whether the poll is broken
                self.interval = min(self.maximum, self.interval * 2)
                continue
            self._on_error(None)
            self.interval = self._next_interval(changed)

    async def poll(self) -> bool:
        """One DescribeJobs round over every watched job; whether anything changed (or was seen the first time)."""
        ids = list(self._jobs)
        self._fresh = False
        changed = False
        results: list[list[dict[str, Any]]] = []

        async def describe(chunk: list[str]) -> None:
            answer = await self._calls.call("batch", "DescribeJobs", {"jobs": chunk})
            results.append(answer.get("jobs", []))

        chunks = [ids[start : start + BATCH] for start in range(0, len(ids), BATCH)]
        self.largest_poll = max(self.largest_poll, len(chunks))
        async with anyio.create_task_group() as tg:
            for chunk in chunks:
                tg.start_soon(describe, chunk)
        now = anyio.current_time()
        for jobs in results:
            for job in jobs:
                watched = self._jobs.get(job.get("jobId", ""))
                if watched is not None and watched._update(job, now):
                    changed = True
        self.polls += 1
        return changed

    def _next_interval(self, changed: bool) -> float:
        statuses = [w.job.get("status") if w.job else None for w in self._jobs.values()]
        if changed or self._fresh or any(s is None or s in _MOVING for s in statuses):
            return self.minimum
        if statuses and all(s == "RUNNABLE" for s in statuses):
            return min(self.maximum, self.interval * 2)
        return min(max(self.minimum, self.maximum / 3), self.interval * 1.5)

    def statuses(self) -> Iterable[str]:
        return (w.job.get("status", "") for w in self._jobs.values() if w.job)
