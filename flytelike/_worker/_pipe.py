"""The warm worker: ``python -m flytelike._worker LOG_PATH`` runs jobs that arrive as frames on its stdin.

The parent (:mod:`flytelike._backends.local._process_pool`) writes frames of the worker protocol
(:mod:`flytelike._worker._frames`) to this process's stdin and reads frames from its stdout. At start-up both
descriptors are moved off fds 0 and 1, which then point at ``/dev/null``: fds 0, 1 and 2 belong to the task, and a
task that prints or reads input must never corrupt the protocol. During a job fds 1 and 2 point at ``LOG_PATH``,
so that output written by C code is captured too; it goes to the parent in ``Logs`` frames while the job runs
and the rest in ``Done.logs``.

The worker sends ``Ready`` once, then answers each ``Start`` with exactly one ``Done``; the end of its input means
stop. While a job that takes calls runs, its task's calls go out as ``SubmitChild`` and come back as
``ChildResult`` (see :mod:`flytelike._worker._children`); a call the task stops waiting for is withdrawn with
``CancelChild``.

The main thread reads the request pipe between jobs; a helper thread reads it while a job that calls tasks or runs
long is running (see :mod:`flytelike._worker._channel`), so answers to calls reach a task while it runs, and a
``Start`` that arrives while a job runs is queued and started the moment that job's ``Done`` is sent (unless the
parent withdraws it first, see ``Withdraw``). Frames are written whole under a lock by whichever thread sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import io
import os
import re
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames
from flytelike._worker._channel import Channel
from flytelike._worker._children import Children, Where
from flytelike._worker._execute import ExecuteCache, ExecuteInput, ExecuteResult, execute
from flytelike.errors import BackendError

__all__ = ["main"]

Kind = worker_pb2.Error.Kind
Message = worker_pb2.WorkerMessage

# The whole log is returned with the reply; past this size only the tail is kept so a chatty task cannot
# exhaust the parent's memory.
_MAX_LOG_BYTES = 8 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_HWM = re.compile(rb"^VmHWM:\s+(\d+)", re.MULTILINE)
_TEMPLATES_KEPT = 256
_PAGE = os.sysconf("SC_PAGE_SIZE")
_RSS_SLACK = 1 << 20
_TASKS_PRUNED_AT = 1024
_STREAM_EVERY = 0.1  # seconds between Logs frames of a running job
_FRAME_BYTES = 1 << 20  # most output in one Logs frame


class _Peak:
    """The worker's peak resident memory, reset at the start of each job so the peak belongs to that job.

    ``clear_refs`` resets the kernel's high-water mark of resident memory (VmHWM) to the current RSS; the peak of a
    job is that mark when it ends. ``getrusage`` reports the same mark (``ru_maxrss``) without the cost of
    ``/proc/self/status``, which the kernel formats whole on every read; ``status`` is read only when
    ``ru_maxrss`` did not follow the reset (it may also hold the peak of threads that exited). The ``/proc`` files
    stay open for the worker's life: opening them costs more than reading them.
    """

    def __init__(self) -> None:
        self._status = _open("/proc/self/status", os.O_RDONLY)
        self._statm = _open("/proc/self/statm", os.O_RDONLY)
        self._clear = _open("/proc/self/clear_refs", os.O_WRONLY)
        self._follows = False
        self._last = 1 << 62  # the peak of the last job (none yet: no bound)

    def reset(self, usage: resource.struct_rusage) -> None:
        """Start a job's peak; ``usage`` is a ``getrusage`` reading taken before this call (maybe well before)."""
        if self._clear is not None:
            try:
                os.write(self._clear, b"5")
            except OSError:
                self._clear = None
        mark = usage.ru_maxrss * 1024
        # A mark above the last job's peak cannot follow the reset (the RSS now is at most that peak, unless it grew
        # in between, when status is read needlessly): no need to read the RSS to know.
        self._follows = self._clear is not None and mark <= self._last + _RSS_SLACK and mark <= self._rss() + _RSS_SLACK

    def read(self, usage: resource.struct_rusage) -> int:
        """The job's peak (bytes), from ``getrusage`` at its end."""
        self._last = self._read(usage)
        return self._last

    def _read(self, usage: resource.struct_rusage) -> int:
        if self._follows:
            return int(usage.ru_maxrss) * 1024
        if self._status is None:
            return 0
        try:
            match = _HWM.search(os.pread(self._status, 1 << 16, 0))
        except OSError:
            self._status = None
            return 0
        return int(match.group(1)) * 1024 if match else 0

    def _rss(self) -> int:
        if self._statm is None:
            return 0
        try:
            return int(os.pread(self._statm, 256, 0).split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            self._statm = None
            return 0


def _open(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return None


def _cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    if not values:
        yield
        return
    saved = {name: os.environ.get(name) for name in values}
    try:
        os.environ.update(values)
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@contextlib.contextmanager
def _affinity(cpus: tuple[int, ...]) -> Iterator[None]:
    if not cpus:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


class _Log:
    """The task's output: fds 1 and 2 point at the log file for the worker's life; a job's output is what was
    appended while it ran. The file is emptied between jobs once it has grown large.

    While a job runs, a thread sends what it printed as ``Logs`` frames every 0.1 s, so the parent shows and keeps
    it as it is written; the ``Done`` carries only the rest. A job shorter than that sends no ``Logs`` at all.
    """

    def __init__(self, fd: int, channel: Channel | None = None) -> None:
        self.fd = fd
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        self._channel = channel
        self._lock = threading.Lock()
        self._running = threading.Condition(self._lock)
        self._live = False  # a job runs
        self._sent = 0  # the offset up to which its output went out in Logs frames
        if channel is not None:
            threading.Thread(target=self._stream, name="flytelike-logs", daemon=True).start()

    def start(self) -> int:
        _flush()
        size = os.fstat(self.fd).st_size
        if size > _MAX_LOG_BYTES:
            os.ftruncate(self.fd, 0)
            size = 0
        with self._running:
            self._live, self._sent = True, size
            self._running.notify()
        return size

    def since(self, start: int) -> str:
        _flush()
        with self._lock:
            self._live = False
            start = max(start, self._sent)
        end = os.fstat(self.fd).st_size
        if end <= start:
            return ""
        first = max(start, end - _MAX_LOG_BYTES)
        text = os.pread(self.fd, end - first, first).decode("utf-8", errors="replace")
        return f"[... first {first - start} bytes of output dropped ...]\n{text}" if first > start else text

    def _stream(self) -> None:
        assert self._channel is not None
        while True:
            with self._running:
                while not self._live:
                    self._running.wait()
            time.sleep(_STREAM_EVERY)
            with self._lock:
                # Under the lock: since() waits, so every Logs frame of a job goes out before its Done.
                while self._live:
                    end = os.fstat(self.fd).st_size
                    if end <= self._sent:
                        break
                    data = os.pread(self.fd, min(end - self._sent, _FRAME_BYTES), self._sent)
                    if not data:
                        break
                    try:
                        self._channel.send(Message(logs=worker_pb2.Logs(data=data)))
                    except OSError:  # the parent is gone
                        return
                    self._sent += len(data)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class _Worker:
    def __init__(self, log: _Log, channel: Channel) -> None:
        self.log = log
        self.channel = channel
        self.cache = ExecuteCache()
        self._cwd = os.getcwd()  # where every job starts
        self.peak = _Peak()
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        # One event loop for the worker's life: a loop per job would cost more than a trivial job.
        self.loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task[Any]] = []
        self._factory = self._track  # one bound method, to tell later whether a task replaced it
        self.loop.set_task_factory(self._factory)
        # Parsed templates by their bytes: the jobs of one task send the same template again and again.
        self._templates: dict[bytes, tasks_pb2.TaskTemplate] = {}

    def _template(self, data: bytes) -> tasks_pb2.TaskTemplate:
        template = self._templates.get(data)
        if template is None:
            if len(self._templates) >= _TEMPLATES_KEPT:
                self._templates.clear()
            template = self._templates[data] = tasks_pb2.TaskTemplate.FromString(data)
        return template

    def handle(self, start: worker_pb2.Start) -> worker_pb2.Done:
        offset = self.log.start()
        try:
            done = self._run(start)
        finally:
            # A task that changed directory must not move the next one.
            with contextlib.suppress(OSError):
                if os.getcwd() != self._cwd:
                    os.chdir(self._cwd)
        done.logs = self.log.since(offset)
        return done

    def _run(self, start: worker_pb2.Start) -> worker_pb2.Done:
        env = dict(start.env) if start.env else {}
        if start.HasField("cuda_visible_devices"):
            env["CUDA_VISIBLE_DEVICES"] = start.cuda_visible_devices
        cpus = tuple(start.cpus)
        if start.WhichOneof("inputs_ref") == "inputs_uri":
            error = BackendError(f"inputs at {start.inputs_uri}: a worker on a pipe takes its inputs in the Start")
            return worker_pb2.Done(error=_frames.error(Kind.SETUP, error))
        template = self._template(start.template)
        where = Where(start.run_id, start.action_id, start.attempt, template.id.name, "local")
        children = Children(self.channel, start.action_id, self.cache, where=where) if start.calls else None
        try:
            request = ExecuteInput(
                template=template,
                inputs=start.inputs,
                code_file=start.code_file or None,
                submitter=children,
                cache=self.cache,
            )
            if env or cpus:
                with _environment(env), _affinity(cpus):
                    result, done = self._execute(request, children, exact=bool(start.memory_limit))
            else:
                result, done = self._execute(request, children, exact=bool(start.memory_limit))
        except Exception as e:
            # The template did not parse, or setting the environment or the affinity failed (an unknown cpu).
            return worker_pb2.Done(error=_frames.error(Kind.SETUP, e))
        if result.error is not None:
            done.error.CopyFrom(result.error)
        else:
            assert result.outputs is not None
            done.outputs = result.outputs
        return done

    def _execute(
        self, request: ExecuteInput, children: Children | None, *, exact: bool
    ) -> tuple[ExecuteResult, worker_pb2.Done]:
        # Unless the job has a memory limit, the reading taken when the last job ended stands for this one's start
        # (it costs a system call that a loaded machine makes slow): the cpu of reading this job's Start counts
        # towards it. A job with a limit reads afresh, so that nothing left by an earlier job (a thread that grew
        # and exited after it ended) can make its peak seem higher than it was.
        before = resource.getrusage(resource.RUSAGE_SELF) if exact else self._usage
        self.peak.reset(before)
        try:
            # A fresh context per job: context variables a task sets do not reach the next job.
            result = contextvars.copy_context().run(self.loop.run_until_complete, self._job(request))
        finally:
            if children is not None:
                children.close()
        after = self._usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = _cpu_seconds(after) - _cpu_seconds(before)
        return result, worker_pb2.Done(peak_memory=self.peak.read(after), cpu_seconds=cpu)

    def _track(self, loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **options)
        tasks = self._tasks
        if len(tasks) >= _TASKS_PRUNED_AT:
            tasks[:] = [t for t in tasks if not t.done()]
        tasks.append(task)
        return task

    async def _job(self, request: ExecuteInput) -> ExecuteResult:
        try:
            return await execute(request)
        finally:
            # Tasks the job started and left running do not outlive it (as with asyncio.run). The loop's task
            # factory keeps the tasks of this job, unless the task replaced it.
            current = asyncio.current_task()
            if self.loop.get_task_factory() is self._factory:
                left = [t for t in self._tasks if t is not current and not t.done()]
            else:
                left = [t for t in asyncio.all_tasks() if t is not current]
            self._tasks.clear()
            for task in left:
                task.cancel()
            if left:
                await asyncio.gather(*left, return_exceptions=True)


def _die_with_parent(parent: int) -> None:
    # Without this a job still running when the parent is killed outright would keep running unobserved.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m flytelike._worker LOG_PATH")
    _die_with_parent(os.getppid())
    log_fd = os.open(args[0], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    requests, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # Line buffering keeps print() and os.write() output in the order the task produced it.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    channel = Channel(requests, replies)
    worker = _Worker(_Log(log_fd, channel), channel)
    channel.send(Message(ready=worker_pb2.Ready(pid=os.getpid())))
    with contextlib.suppress(OSError):  # the parent is gone
        start = channel.next_start()
        while start is not None:
            start = channel.finish(worker.handle(start))
            if start is None:
                start = channel.next_start()
