"""A warm pool of worker processes that run process-isolated local tasks (``fl.Local(process=True)``).

Starting an interpreter and importing flytelike costs tens of milliseconds; a warm worker turns a task into one
round trip over a pipe. Each worker (:mod:`flytelike._worker`) reads requests on its stdin and answers on its
stdout with 8-byte big-endian length-prefixed pickle frames; the worker moves both pipes off fds 0 and 1 first, so
the task's own stdin/stdout/stderr never touch the protocol. Output of a job (including C-level writes) goes to a
per-worker log file in a directory the pool owns, which the worker returns with the reply and which the pool
reads itself when a worker dies mid-job.

While a job runs, its task may call other tasks: the worker sends ``call`` frames, which the pool serves with the
job's ``on_call`` while it waits for the job's reply (see :mod:`flytelike._backends.local._calls`). A job waiting
only for its calls gives up its place, so nested isolated tasks never deadlock the pool.

Memory limits are enforced twice: the pool polls the worker's resident memory while the job runs and SIGKILLs it
past the limit, and the worker caps its address space so one allocation that can never fit fails at once.

Example:
    >>> import anyio, pickle
    >>> async def demo() -> object:
    ...     async with ProcessPool(2) as pool:
    ...         job = ProcessJob("a0", "t.add", file="tasks.py", module=None, inputs=pickle.dumps({"x": 1}))
    ...         return pickle.loads((await pool.run(job)).outputs)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

from flytelike._backends.local._calls import JobCalls, OnCall, Place
from flytelike._backends.local._frames import HEADER, encode, unpickle_error
from flytelike.errors import BackendError, OutOfMemoryError

__all__ = ["OnCall", "ProcessJob", "ProcessPool", "ProcessResult", "TaskProcessError"]

_POLL_SECONDS = 0.02
_STOP_GRACE_SECONDS = 2.0
_START_TIMEOUT_SECONDS = 60.0
_EXIT_WAIT_SECONDS = 5.0
_CRASH_LOG_CHARS = 2000
_LOST = (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError)


@dataclass(frozen=True, slots=True)
class ProcessJob:
    """One task invocation to run in a worker; exactly one of ``file`` and ``module`` is set."""

    action_id: str
    task: str
    file: str | None
    module: str | None
    inputs: bytes
    memory_limit: int = 0
    cpus: tuple[int, ...] = ()
    cuda_visible_devices: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.file is None) == (self.module is None):
            raise ValueError(f"ProcessJob for {self.task}: set exactly one of file= and module=")
        if self.memory_limit < 0:
            raise ValueError(f"ProcessJob for {self.task}: memory_limit={self.memory_limit} is negative")


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What a job produced: pickled outputs, its peak resident memory (bytes), cpu seconds and its output."""

    outputs: bytes
    peak_memory: int
    cpu_time: float
    logs: str


class TaskProcessError(Exception):
    """The task raised in the worker.

    Attributes:
        type_name: qualified name of the exception's class (``ValueError``, ``mymod.MyError``).
        message: ``str()`` of the exception.
        traceback_text: the formatted traceback, as the worker printed it.
        original: the exception itself when it survived pickling, else None.
        logs: what the job wrote to stdout/stderr before it failed.
    """

    def __init__(
        self,
        message: str,
        *,
        type_name: str,
        traceback_text: str,
        original: BaseException | None = None,
        logs: str = "",
    ) -> None:
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.original = original
        self.logs = logs
        super().__init__(f"{type_name}: {message}" if message else type_name)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are lost by the default pickling of exceptions.
        return (_rebuild, (self.message, self.type_name, self.traceback_text, self.original, self.logs))


def _rebuild(
    message: str, type_name: str, traceback_text: str, original: BaseException | None, logs: str
) -> TaskProcessError:
    return TaskProcessError(message, type_name=type_name, traceback_text=traceback_text, original=original, logs=logs)


class _Worker:
    def __init__(self, process: anyio.abc.Process, log_path: str) -> None:
        self.process = process
        self.pid = process.pid
        self.log_path = log_path
        self.closed = False
        assert process.stdin is not None
        assert process.stdout is not None
        self._requests = process.stdin
        self._replies = BufferedByteReceiveStream(process.stdout)
        # Replies to concurrent calls of one job are written by their own tasks; a frame must go out whole.
        self._sending = anyio.Lock()

    async def send(self, message: Mapping[str, Any]) -> None:
        data = encode(message)
        async with self._sending:
            await self._requests.send(data)

    async def receive(self) -> dict[str, Any]:
        (size,) = HEADER.unpack(await self._replies.receive_exactly(HEADER.size))
        message: dict[str, Any] = pickle.loads(await self._replies.receive_exactly(size))
        return message

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def close(self, grace: float = 0.0) -> None:
        """Stop the worker (end of input asks it to exit; SIGKILL after ``grace``) and reap it."""
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            if grace > 0 and self.process.returncode is None:
                await self._requests.aclose()
                with anyio.move_on_after(grace):
                    await self.process.wait()
            self.kill()
            await self.process.aclose()


class _MemoryWatch:
    """Polls a worker's resident memory during one job; kills it once the peak passes the limit."""

    def __init__(self, worker: _Worker, limit: int) -> None:
        self.worker = worker
        self.limit = limit
        self.peak = 0
        self.killed = False
        self._status = f"/proc/{worker.pid}/status"

    async def run(self) -> None:
        while True:
            try:
                rss, hwm = await anyio.to_thread.run_sync(_read_rss, self._status)
            except (OSError, ValueError):
                return  # the worker is gone; the reply reader reports why
            self.peak = max(self.peak, rss, hwm)
            if self.peak > self.limit:
                self.killed = True
                self.worker.kill()
                return
            await anyio.sleep(_POLL_SECONDS)


def _read_rss(status_path: str) -> tuple[int, int]:
    with open(status_path, "rb") as f:
        text = f.read()
    values = dict(re.findall(rb"^(VmRSS|VmHWM):\s+(\d+)", text, re.MULTILINE))
    return int(values[b"VmRSS"]) * 1024, int(values[b"VmHWM"]) * 1024


def _reset_peak(pid: int) -> None:
    # Resetting VmHWM from here rather than only in the worker means no poll can see a previous job's peak.
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _log_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * _CRASH_LOG_CHARS))
            return f.read().decode("utf-8", errors="replace")[-_CRASH_LOG_CHARS:]
    except OSError:
        return ""


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _exit_description(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by signal {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


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
    """

    def __init__(
        self, size: int, *, python: str = sys.executable, startup_env: Mapping[str, str] | None = None
    ) -> None:
        if size < 1:
            raise ValueError(f"ProcessPool size must be at least 1, not {size}")
        self.size = size
        self._python = python
        self._env = {**os.environ, **startup_env} if startup_env else None
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._slots: anyio.Semaphore | None = None
        self._dir: str | None = None
        self._serial = 0

    async def __aenter__(self) -> ProcessPool:
        self._dir = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="flytelike-workers-"))
        self._slots = anyio.Semaphore(self.size, fast_acquire=True)
        failures: list[BaseException] = []

        async def start_one() -> None:
            try:
                self._idle.append(await self._start())
            except Exception as e:
                failures.append(e)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.size):
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
            if self._dir is not None:
                folder, self._dir = self._dir, None
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))

    async def run(self, job: ProcessJob, on_call: OnCall | None = None) -> ProcessResult:
        """Run ``job`` on a free worker and return what it produced.

        Args:
            job: what to run.
            on_call: serves the tasks the job's task calls (``on_call(task_name, pickled_values)`` returns the
                pickled named outputs, or raises); the job is cancelled with them. Without it, calls inside the
                task are plain function calls.

        Raises:
            TaskProcessError: the task raised.
            OutOfMemoryError: the job went past ``job.memory_limit`` (or raised MemoryError); the error has
                ``peak_memory`` (bytes) and ``logs``.
            BackendError: the worker died without replying, or could not start the job (the file failed to
                import, an unknown cpu id); the error has ``logs``.
        """
        if self._slots is None or self._dir is None:
            raise RuntimeError("ProcessPool.run() called outside `async with ProcessPool(...)`")
        # The worker gets plain values: it must not need to import this module (and anyio) to read them.
        request = {f.name: getattr(job, f.name) for f in fields(ProcessJob)} | {
            "env": dict(job.env),
            "calls": on_call is not None,
        }
        place = Place(self._slots)
        await place.take()
        try:
            worker = await self._checkout()
            keep = False
            try:
                calls = JobCalls(worker.send, on_call, place)
                reply, peak_seen = await self._exchange(worker, job, request, calls)
                # A MemoryError can leave the worker's heap fragmented and large: start the next job afresh.
                keep = reply["kind"] != "oom"
            finally:
                # Jobs waiting for their calls hold workers beyond `size`; once they end, only `size` stay warm.
                if keep and len(self._idle) < self.size:
                    self._idle.append(worker)
                else:
                    await self._discard(worker)
        finally:
            place.give_back()
        return _result(job, reply, peak_seen)

    async def _checkout(self) -> _Worker:
        while self._idle:
            # Most recently used first: its caches are warm, and a lightly used pool keeps reusing one worker.
            worker = self._idle.pop()
            if worker.process.returncode is None:
                return worker
            await self._discard(worker)
        return await self._start()

    async def _discard(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        await worker.close()

    async def _start(self) -> _Worker:
        assert self._dir is not None
        self._serial += 1
        log_path = os.path.join(self._dir, f"worker-{self._serial}.log")
        process = await anyio.open_process(
            [self._python, "-m", "flytelike._worker", log_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            # Ctrl-C must reach only this process, which then cancels jobs and kills their workers itself.
            start_new_session=True,
        )
        worker = _Worker(process, log_path)
        self._workers.add(worker)
        try:
            with anyio.fail_after(_START_TIMEOUT_SECONDS):
                ready = await worker.receive()
            if ready.get("kind") != "ready":
                raise BackendError(f"worker process {worker.pid} sent {ready.get('kind')!r} instead of 'ready'")
        except (*_LOST, TimeoutError) as e:
            detail = await _startup_failure(worker, timed_out=isinstance(e, TimeoutError))
            await self._discard(worker)
            raise BackendError(
                f"a worker process ({self._python} -m flytelike._worker) failed to start: {detail}"
            ) from None
        except BaseException:
            await self._discard(worker)
            raise
        return worker

    async def _exchange(
        self, worker: _Worker, job: ProcessJob, request: Mapping[str, Any], calls: JobCalls
    ) -> tuple[dict[str, Any], int]:
        watch = _MemoryWatch(worker, job.memory_limit) if job.memory_limit else None
        reply: dict[str, Any] | None = None
        try:
            if watch is not None:
                await anyio.to_thread.run_sync(_reset_peak, worker.pid)
            await worker.send(request)
            async with anyio.create_task_group() as tg:
                if watch is not None:
                    tg.start_soon(watch.run)
                try:
                    reply = await calls.until_reply(worker.receive, tg)
                except _LOST:
                    pass  # handled below; raising here would wrap it in an ExceptionGroup
                finally:
                    # The memory watch stops, and calls the task made but did not wait for are cancelled.
                    tg.cancel_scope.cancel()
        except _LOST:
            pass
        if reply is not None:
            return reply, watch.peak if watch is not None else 0
        # The worker died mid-job: learn how, outside the except block so the error reads as the cause.
        with anyio.move_on_after(_EXIT_WAIT_SECONDS):
            await worker.process.wait()
        worker.kill()
        await worker.process.wait()
        logs = await anyio.to_thread.run_sync(_log_tail, worker.log_path)
        if watch is not None and watch.killed:
            raise _out_of_memory(job, watch.peak, logs)
        how = _exit_description(worker.process.returncode)
        message = (
            f"task {job.task} (action {job.action_id}): its worker process {worker.pid} exited without replying ({how})"
        )
        if logs.strip():
            message += f"; last output:\n{logs.rstrip()}"
        error = BackendError(message)
        _annotate(error, logs=logs)
        raise error


async def _startup_failure(worker: _Worker, *, timed_out: bool) -> str:
    worker.kill()
    stderr = b""
    assert worker.process.stderr is not None
    with anyio.move_on_after(_EXIT_WAIT_SECONDS), contextlib.suppress(*_LOST):
        async for chunk in worker.process.stderr:
            stderr += chunk
    await worker.process.wait()
    how = f"no reply in {_START_TIMEOUT_SECONDS:.0f} s" if timed_out else _exit_description(worker.process.returncode)
    text = stderr.decode("utf-8", errors="replace").strip()
    return f"{how}: {text[-_CRASH_LOG_CHARS:]}" if text else how


def _out_of_memory(job: ProcessJob, peak: int, logs: str, *, allocation_failed: bool = False) -> OutOfMemoryError:
    how = "; an allocation failed with MemoryError" if allocation_failed else ""
    error = OutOfMemoryError(
        f"task {job.task} exceeded its memory limit of {_mib(job.memory_limit)} "
        f"(peak resident memory {_mib(peak)}{how})",
        task=job.task,
        action=job.action_id,
        attempt=0,
        cause_type="MemoryError",
    )
    _annotate(error, peak_memory=peak, logs=logs)
    return error


def _result(job: ProcessJob, reply: Mapping[str, Any], peak_seen: int) -> ProcessResult:
    kind = reply["kind"]
    logs: str = reply.get("logs", "")
    peak = max(int(reply.get("peak_memory", 0)), peak_seen)
    # A peak over the limit that fell between two polls still fails the job, as a cgroup would.
    if kind == "oom" or (job.memory_limit and peak > job.memory_limit):
        raise _out_of_memory(job, peak, logs, allocation_failed=kind == "oom")
    if kind == "ok":
        return ProcessResult(outputs=reply["outputs"], peak_memory=peak, cpu_time=reply["cpu_time"], logs=logs)
    original = unpickle_error(reply.get("exception"))
    if kind == "error":
        raise TaskProcessError(
            reply["message"],
            type_name=reply["type_name"],
            traceback_text=reply["traceback"],
            original=original,
            logs=logs,
        )
    error = BackendError(
        f"task {job.task} (action {job.action_id}): the worker could not start it: "
        f"{reply['type_name']}: {reply['message']}"
    )
    _annotate(error, logs=logs)
    raise error from original
