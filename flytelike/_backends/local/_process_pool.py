"""A warm pool of worker processes that run process-isolated local tasks (``fl.Local(process=True)``).

Starting an interpreter and importing flytelike costs tens of milliseconds; a warm worker turns a task into one
round trip over a pipe. Each worker (``python -m flytelike._worker``) reads frames of the worker protocol
(:mod:`flytelike._worker._frames`: an 8-byte length and a serialized ``WorkerMessage``) on its stdin and answers
on its stdout; no pickle crosses the pipe: the job carries the task's template and its inputs as literal bytes,
the answer the outputs as literal bytes or a structured error. The worker moves both pipes off fds 0 and 1 first,
so the task's own stdin/stdout/stderr never touch the protocol. Output of a job (including C-level writes) goes to
a per-worker log file in a directory the pool owns; the worker sends it in ``Logs`` frames while the job runs
(``on_logs``) and the rest with its answer, and the pool reads the file itself when a worker dies mid-job.

While a job runs, its task may call other tasks: the worker sends ``SubmitChild``, which the pool serves with the
job's ``on_call`` while it waits for the job's ``Done`` (see :mod:`flytelike._backends.local._calls`). A job
waiting only for its calls gives up its place, so nested isolated tasks never deadlock the pool.

A job's memory limit counts the resident memory of its worker and of every process the task starts (see
:mod:`flytelike._backends.local._memory`); past it the whole tree is killed and the job fails with
OutOfMemoryError.

The pool speaks to its workers through asyncio's subprocess protocol directly (:mod:`._connection`): frames are cut
as bytes arrive and written without waiting. When every place is taken, a job without a memory limit is queued
behind a running one, so the worker starts it the moment it answers the previous one; a queued job is withdrawn as
soon as a place frees up elsewhere (see :mod:`._places`).

Example:
    >>> async def demo(template: bytes, inputs: bytes) -> bytes:
    ...     async with ProcessPool(2) as pool:
    ...         job = ProcessJob("r1", "0", 1, template=template, inputs=inputs, code_file="tasks.py")
    ...         return (await pool.run(job)).outputs
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from types import TracebackType

import anyio
import anyio.to_thread

from flytelike._backends.local._calls import ChildCall, JobCalls, OnCall, Place
from flytelike._backends.local._cgroup import CgroupMemory
from flytelike._backends.local._connection import (
    EXIT_WAIT_SECONDS,
    START_TIMEOUT_SECONDS,
    Connection,
    Worker,
    exit_description,
    log_tail,
    startup_failure,
)
from flytelike._backends.local._jobs import ProcessJob, ProcessResult, TaskProcessError
from flytelike._backends.local._memory import MemoryWatch, MemoryWatcher
from flytelike._backends.local._places import Places, Turn
from flytelike._proto.worker.v1 import worker_pb2
from flytelike.errors import BackendError, OutOfMemoryError

__all__ = ["ChildCall", "OnCall", "ProcessJob", "ProcessPool", "ProcessResult", "TaskProcessError"]

Kind = worker_pb2.Error.Kind
Message = worker_pb2.WorkerMessage

_STOP_GRACE_SECONDS = 2.0
# Jobs queued behind the one a worker runs: enough that a worker never waits for the pool to answer and that both
# sides read several frames per wake-up; the worker answers a withdrawal at every job boundary (and within about
# 10-20 ms of a long job), so a queued job still moves to a place that frees up elsewhere.
_QUEUE_DEPTH = 8


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _annotate(error: BaseException, **attributes: object) -> None:
    for name, value in attributes.items():
        setattr(error, name, value)


class ProcessPool:
    """``size`` warm worker processes; at most ``size`` jobs run at once, the rest wait in order.

    A job whose task only waits for the tasks it called does not count (it gives its place to them), so the pool
    can hold more than ``size`` workers while such jobs wait; only ``size`` are kept warm afterwards.

    Args:
        size: number of workers, and of jobs that run at the same time.
        python: the interpreter workers run; it must be able to import flytelike.
        startup_env: extra environment variables for every worker, on top of this process's environment.
        prestart: workers started on entry (default: all ``size``); the others start when a job first needs
            them, so a run with one isolated task never pays for starting a pool as wide as the machine.
    """

    def __init__(
        self,
        size: int,
        *,
        python: str = sys.executable,
        startup_env: Mapping[str, str] | None = None,
        prestart: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"ProcessPool size must be at least 1, not {size}")
        self.size = size
        self._prestart = size if prestart is None else max(0, min(prestart, size))
        self._python = python
        self._env = {**os.environ, **startup_env} if startup_env else None
        self._idle: list[Worker] = []
        self._workers: set[Worker] = set()
        self._places: Places[Worker] | None = None
        self._busy: set[Worker] = set()
        self._queued: dict[Turn, Worker] = {}  # turns not started yet, oldest first
        self._dir: str | None = None
        self._serial = 0
        self._memory = MemoryWatcher()
        self._cgroup: CgroupMemory | None = None

    async def __aenter__(self) -> ProcessPool:
        self._dir = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="flytelike-workers-"))
        self._places = Places(self.size, prefetch=self._prefetch, unused=self._unused, freed=self._withdraw_one)
        self._cgroup = await anyio.to_thread.run_sync(CgroupMemory.detect)
        failures: list[BaseException] = []

        async def start_one() -> None:
            try:
                self._idle.append(await self._start())
            except Exception as e:
                failures.append(e)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self._prestart):
                    tg.start_soon(start_one)
            if failures:
                raise failures[0]
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every worker and reap it; safe to call more than once."""
        workers, self._workers = list(self._workers), set()
        self._idle.clear()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    tg.start_soon(worker.close, _STOP_GRACE_SECONDS)
            await anyio.to_thread.run_sync(self._memory.close)
            if self._cgroup is not None:
                await anyio.to_thread.run_sync(self._cgroup.close)
            if self._dir is not None:
                folder, self._dir = self._dir, None
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))

    async def run(
        self, job: ProcessJob, on_call: OnCall | None = None, on_logs: Callable[[bytes], None] | None = None
    ) -> ProcessResult:
        """Run ``job`` on a free worker and return what it produced.

        Args:
            job: what to run.
            on_call: serves the tasks the job's task calls (it returns the child's serialized outputs, or raises);
                the calls are cancelled with the job. Without it, calls inside the task are plain function calls.
            on_logs: takes the job's output while it runs (a job of more than 0.1 s); the result's ``logs`` (or
                the error's) hold the rest.

        Raises:
            TaskProcessError: the task raised.
            OutOfMemoryError: the job went past ``job.memory_limit`` (or raised MemoryError); the error has
                ``peak_memory`` (bytes) and ``logs``.
            BackendError: the worker died without replying, or could not start the job (the file failed to
                import, the code changed, an unknown cpu id); the error has ``logs``.
        """
        places = self._places
        if places is None or self._dir is None:
            raise RuntimeError("ProcessPool.run() called outside `async with ProcessPool(...)`")
        place = Place(places)
        start = Message(start=job.start(calls=on_call is not None))
        while True:
            granted = await places.claim(queueable=not job.memory_limit)
            if granted is None:
                place.held = True
                try:
                    worker = await self._checkout()
                except BaseException:
                    place.give_back()
                    raise
                worker.send(start)
                break
            worker, turn = granted
            turn.action_id, turn.attempt = job.action_id, job.attempt
            worker.send(start)
            try:
                started = await turn.started
            except BaseException:
                # Withdrawn before it starts, the worker need not be killed for it.
                turn.cancelled = True
                self._withdraw(worker, turn)
                raise
            if started:
                place.held = True  # handed over by the job before it
                break
            if self._dir is None:
                raise RuntimeError("ProcessPool.run(): the pool was closed while the job waited")
            # Withdrawn, or its worker died before it got to this job, which never started: run it elsewhere.
        try:
            done: worker_pb2.Done | None = None
            keep = False
            self._begin(worker, job, place)
            try:
                done, peak_seen = await self._exchange(worker, job, on_call, place, on_logs)
                # A MemoryError can leave the worker's heap fragmented and large: start the next job afresh.
                keep = not (done.WhichOneof("outcome") == "error" and done.error.kind == Kind.OOM)
            finally:
                await self._end(worker, place, finished=done is not None, keep=keep)
        finally:
            place.give_back()
        return _result(job, done, peak_seen)

    def _prefetchable(self, worker: Worker) -> bool:
        place = worker.place
        return (
            place is not None
            and len(worker.turns) < _QUEUE_DEPTH
            and not worker.limited
            and place.waiting == 0
            and not worker.closed
            and worker.connection.lost is None
        )

    def _reserve(self, worker: Worker) -> Turn:
        turn = self._queue_turn(worker)
        worker.turns.append(turn)
        return turn

    def _queue_turn(self, worker: Worker) -> Turn:
        turn = Turn()
        self._queued[turn] = worker
        return turn

    def _clear(self, worker: Worker, turn: Turn) -> None:
        if turn in worker.turns:
            worker.turns.remove(turn)
        self._queued.pop(turn, None)

    def _prefetch(self) -> tuple[Worker, Turn] | None:
        for worker in self._busy:
            if self._prefetchable(worker):
                return worker, self._reserve(worker)
        return None

    def _unused(self, grant: tuple[Worker, Turn]) -> None:
        worker, turn = grant
        self._clear(worker, turn)
        self._offer(worker)

    def _offer(self, worker: Worker) -> None:
        places = self._places
        if places is not None and places.waiting and self._prefetchable(worker):
            turn = self._reserve(worker)
            if not places.offer((worker, turn)):
                self._clear(worker, turn)

    def _withdraw_one(self) -> None:
        """A place is free and nobody waits for it: withdraw the oldest queued job, which then takes it."""
        for turn, worker in self._queued.items():
            if not (turn.withdrawing or turn.cancelled or turn.started.done()) and turn.action_id:
                self._withdraw(worker, turn)
                return

    def _withdrawn(self, worker: Worker, answer: worker_pb2.Withdrawn) -> None:
        for turn in worker.turns:
            if (turn.action_id, turn.attempt) == (answer.action_id, answer.attempt):
                self._clear(worker, turn)
                if not turn.started.done():
                    turn.started.set_result(False)
                return

    @staticmethod
    def _withdraw(worker: Worker, turn: Turn) -> None:
        if not (turn.withdrawing or turn.started.done()):
            turn.withdrawing = True
            worker.send(Message(withdraw=worker_pb2.Withdraw(action_id=turn.action_id, attempt=turn.attempt)))

    def _begin(self, worker: Worker, job: ProcessJob, place: Place) -> None:
        worker.place = place
        worker.limited = bool(job.memory_limit)
        self._busy.add(worker)
        if not worker.limited:
            self._offer(worker)

    async def _end(self, worker: Worker, place: Place, *, finished: bool, keep: bool) -> None:
        """The job on ``worker`` ended: hand the worker and the place to the job queued behind it, if it started."""
        worker.place = None
        self._busy.discard(worker)
        turns = worker.turns
        if turns:
            turn = turns.popleft()
            self._queued.pop(turn, None)
            if finished and not turn.cancelled:
                # The worker started the next job as soon as it answered this one; the rest stay queued behind it.
                place.held = False
                turn.started.set_result(True)
                return
            # Not finished: the worker died (or is killed now) before it could start the jobs queued behind.
            # Finished, but the next job was cancelled while it waited: the worker runs what nobody wants.
            for left in (turn, *turns):
                self._queued.pop(left, None)
                if not left.started.done():
                    left.started.set_result(False)
            turns.clear()
            keep = False
        # Jobs waiting for their calls hold workers beyond `size`; once they end, only `size` stay warm.
        if keep and len(self._idle) < self.size:
            self._idle.append(worker)
        else:
            await self._discard(worker)

    async def _checkout(self) -> Worker:
        while self._idle:
            # Most recently used first: its caches are warm, and a lightly used pool keeps reusing one worker.
            worker = self._idle.pop()
            if worker.returncode is None and worker.connection.lost is None:
                return worker
            await self._discard(worker)
        return await self._start()

    async def _discard(self, worker: Worker) -> None:
        self._workers.discard(worker)
        await worker.close()
        if worker.cgroup is not None:
            CgroupMemory.release(worker.cgroup)

    async def _start(self) -> Worker:
        assert self._dir is not None
        self._serial += 1
        log_path = os.path.join(self._dir, f"worker-{self._serial}.log")
        loop = asyncio.get_running_loop()
        connection = Connection(loop)
        command = [self._python, "-m", "flytelike._worker", log_path]
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: connection,
                *command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                # Ctrl-C must reach only this process, which then cancels jobs and kills their workers itself.
                start_new_session=True,
            )
        except OSError as e:
            raise BackendError(f"a worker process ({' '.join(command[:3])}) failed to start: {e}") from None
        worker = Worker(transport, connection, log_path)
        connection.on_withdrawn = functools.partial(self._withdrawn, worker)
        self._workers.add(worker)
        timed_out = False
        try:
            with anyio.fail_after(START_TIMEOUT_SECONDS):
                ready = await worker.receive()
        except TimeoutError:
            ready, timed_out = None, True
        except BaseException:
            await self._discard(worker)
            raise
        if ready is None or ready.WhichOneof("body") != "ready":
            if ready is None:
                detail = await startup_failure(worker, timed_out=timed_out)
            else:
                detail = f"it sent {ready.WhichOneof('body')!r} before 'ready'"
            await self._discard(worker)
            raise BackendError(f"a worker process ({self._python} -m flytelike._worker) failed to start: {detail}")
        if self._cgroup is not None:
            worker.cgroup = self._cgroup.adopt(worker.pid, f"worker-{self._serial}")
        return worker

    async def _exchange(
        self,
        worker: Worker,
        job: ProcessJob,
        on_call: OnCall | None,
        place: Place,
        on_logs: Callable[[bytes], None] | None = None,
    ) -> tuple[worker_pb2.Done, int]:
        calls = JobCalls(worker.send, on_call, place, on_logs)
        watch: MemoryWatch | None = None
        group = worker.cgroup if job.memory_limit else None
        oom_kills = 0
        try:
            if job.memory_limit:
                if group is not None:
                    # The kernel holds the tree to the limit; the watch only keeps the peak.
                    CgroupMemory.limit(group, job.memory_limit)
                    oom_kills = CgroupMemory.oom_kills(group)
                watch = self._memory.watch(worker.pid, job.memory_limit, kill=group is None)
            done = await calls.until_done(worker.receive)
        finally:
            if watch is not None:
                self._memory.unwatch(watch)
        killed = watch is not None and watch.killed
        if group is not None and CgroupMemory.oom_kills(group) > oom_kills:
            killed = True
            assert watch is not None
            watch.peak = max(watch.peak, job.memory_limit + 1)
        elif group is not None and done is not None:
            CgroupMemory.limit(group, 0)
        if done is not None and not killed:
            return done, watch.peak if watch is not None else 0
        # The worker died mid-job (or ran out of memory): learn how.
        if not killed:
            with anyio.move_on_after(EXIT_WAIT_SECONDS):
                await worker.wait()
        worker.kill()
        await worker.wait()
        logs = await anyio.to_thread.run_sync(log_tail, worker.log_path)
        if killed:
            assert watch is not None
            raise _out_of_memory(job, watch.peak, logs)
        how = exit_description(worker.returncode)
        message = f"task {job.task} (action {job.action_id}): its worker process {worker.pid} exited without replying "
        message += f"({how})" if worker.connection.lost == "its output closed" else f"({how}; {worker.connection.lost})"
        if logs.strip():
            message += f"; last output:\n{logs.rstrip()}"
        error = BackendError(message)
        _annotate(error, logs=logs)
        raise error


def _out_of_memory(job: ProcessJob, peak: int, logs: str, *, allocation_failed: bool = False) -> OutOfMemoryError:
    how = "; an allocation failed with MemoryError" if allocation_failed else ""
    task = job.task
    error = OutOfMemoryError(
        f"task {task} exceeded its memory limit of {_mib(job.memory_limit)} (peak resident memory {_mib(peak)}{how})",
        task=task,
        action=job.action_id,
        attempt=job.attempt,
        cause_type="MemoryError",
    )
    _annotate(error, peak_memory=peak, logs=logs)
    return error


def _result(job: ProcessJob, done: worker_pb2.Done, peak_seen: int) -> ProcessResult:
    logs = done.logs
    peak = max(done.peak_memory, peak_seen)
    outcome = done.WhichOneof("outcome")
    error = done.error if outcome == "error" else None
    oom = error is not None and error.kind == Kind.OOM
    # A peak over the limit that fell between two polls still fails the job, as a cgroup would.
    if oom or (job.memory_limit and peak > job.memory_limit):
        raise _out_of_memory(job, peak, logs, allocation_failed=oom)
    if outcome == "outputs":
        return ProcessResult(outputs=done.outputs, peak_memory=peak, cpu_time=done.cpu_seconds, logs=logs)
    if error is not None and error.kind == Kind.USER:
        raise TaskProcessError.named(
            error.message, type_name=error.type_name, traceback_text=error.traceback, logs=logs
        )
    if error is not None:
        detail = f"the worker could not start it: {error.type_name}: {error.message}"
    else:
        detail = f"the worker answered with {outcome or 'nothing'!r}, which this pool cannot read"
    failure = BackendError(f"task {job.task} (action {job.action_id}): {detail}")
    _annotate(failure, logs=logs, traceback_text=error.traceback if error is not None else "")
    raise failure
