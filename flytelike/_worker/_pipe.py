"""The warm worker: ``python -m flytelike._worker LOG_PATH`` runs jobs that arrive as frames on its stdin.

The parent (:mod:`flytelike._backends.local._process_pool`) writes frames of the worker protocol
(:mod:`flytelike._worker._frames`) to this process's stdin and reads frames from its stdout. At start-up both
descriptors are moved off fds 0 and 1, which then point at ``/dev/null``: fds 0, 1 and 2 belong to the task, and a
task that prints or reads input must never corrupt the protocol. During a job fds 1 and 2 point at ``LOG_PATH``,
so that output written by C code is captured too; the whole output comes back in ``Done.logs``.

The worker sends ``Ready`` once, then answers each ``Start`` with exactly one ``Done``; the end of its input means
stop. While a job that takes calls runs, its task's calls go out as ``SubmitChild`` and come back as
``ChildResult`` (see :mod:`flytelike._worker._children`); a call the task stops waiting for is withdrawn with
``CancelChild``.

A reader thread owns the request pipe: answers to calls reach a task while it runs, and a ``Start`` that arrives
while a job runs is queued and started the moment that job's ``Done`` is sent (unless the parent withdraws it
first, see ``Withdraw``). Frames are written whole under a lock by whichever thread sends them.
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
from collections import deque
from collections.abc import Iterator, Mapping

from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames
from flytelike._worker._children import Children, Deliver, Where
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


class _Channel:
    """The pipes to the parent, shared by the job loop, the tasks' calls and the reader thread.

    The reader thread takes every frame off the request pipe: answers to calls go to whoever waits for them, a
    ``Start`` to the queue of jobs, a ``Withdraw`` removes a queued ``Start`` (answered with ``Withdrawn``) if the
    job ahead of it still runs. The main thread sends a job's ``Done`` and takes the next queued ``Start`` under
    one lock, so the parent can tell from the order of ``Done`` and ``Withdrawn`` whether a job it withdrew started.
    """

    def __init__(self, requests: int, replies: int) -> None:
        self._requests = requests
        self._replies = replies
        self._sending = threading.Lock()
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        self._waiting: dict[int, Deliver] = {}
        self._starts: deque[worker_pb2.Start] = deque()
        self._running = False  # a job runs (so a Start queued behind it can still be withdrawn)
        self._ended = False
        self._decoder = _frames.Decoder()
        self._read: list[Message] = []
        threading.Thread(target=self._read_all, name="flytelike-in", daemon=True).start()

    def _next(self) -> Message | None:
        """The next message from the parent (None at the end of input); reads as much as the pipe holds at once."""
        while not self._read:
            data = os.read(self._requests, 1 << 16)
            if not data:
                self._decoder.end()
                return None
            self._read = self._decoder.feed(data)
            self._read.reverse()
        return self._read.pop()

    def send(self, message: Message) -> None:
        data = _frames.encode(message)
        with self._sending:
            _frames.write(self._replies, data)

    def next_start(self) -> worker_pb2.Start | None:
        """The next job, waiting for one; None at the end of input (or when the parent is gone)."""
        with self._queued:
            while not self._starts and not self._ended:
                self._queued.wait()
            if not self._starts:
                return None
            self._running = True
            return self._starts.popleft()

    def finish(self, done: worker_pb2.Done) -> worker_pb2.Start | None:
        """Send a job's Done and take the job queued behind it, if any (then it has started)."""
        data = _frames.encode(Message(done=done))
        with self._queued:
            following = self._starts.popleft() if self._starts else None
            self._running = following is not None
            with self._sending:
                _frames.write(self._replies, data)
        return following

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        with self._lock:
            if self._ended:
                raise BackendError(f"task {message.task} cannot be called: the run this worker served has ended")
            self._waiting[message.call] = deliver
        self.send(Message(submit_child=message))

    def cancel(self, call: int) -> None:
        with self._lock:
            if self._waiting.pop(call, None) is None:
                return
        self.send(Message(cancel_child=worker_pb2.CancelChild(call=call)))

    def abandon(self, reason: str) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for call, deliver in waiting.items():
            deliver(_lost(call, reason))

    def _withdraw(self, request: worker_pb2.Withdraw) -> None:
        with self._queued:
            if not self._running:
                return  # the Done ahead of it was sent: it has started, or starts now
            for start in self._starts:
                if (start.action_id, start.attempt) == (request.action_id, request.attempt):
                    self._starts.remove(start)
                    answer = worker_pb2.Withdrawn(action_id=request.action_id, attempt=request.attempt)
                    self.send(Message(withdrawn=answer))
                    return

    def _read_all(self) -> None:
        try:
            while (message := self._next()) is not None:
                which = message.WhichOneof("body")
                if which == "child_result":
                    with self._lock:
                        deliver = self._waiting.pop(message.child_result.call, None)
                    if deliver is not None:  # None: a call its job no longer waits for
                        deliver(message.child_result)
                elif which == "start":
                    with self._queued:
                        self._starts.append(message.start)
                        self._queued.notify()
                elif which == "withdraw":
                    self._withdraw(message.withdraw)
        except (OSError, _frames.FrameError):
            pass
        finally:
            with self._queued:
                self._ended = True
                self._queued.notify()
            self.abandon("the run this worker served has ended")


def _lost(call: int, reason: str) -> worker_pb2.ChildResult:
    return worker_pb2.ChildResult(
        call=call,
        error=worker_pb2.Error(kind=Kind.SYSTEM, type_name="flytelike.errors.BackendError", message=reason),
    )


def _peak_rss() -> int:
    fd = os.open("/proc/self/status", os.O_RDONLY)
    try:
        match = _HWM.search(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return int(match.group(1)) * 1024 if match else 0


def _reset_peak_rss() -> None:
    # "5" resets VmHWM to the current RSS, so the peak read at the end belongs to this job alone.
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, b"5")
    except OSError:
        pass
    finally:
        os.close(fd)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
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
    appended while it ran. The file is emptied between jobs once it has grown large."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.dup2(fd, 1)
        os.dup2(fd, 2)

    def start(self) -> int:
        _flush()
        size = os.fstat(self.fd).st_size
        if size > _MAX_LOG_BYTES:
            os.ftruncate(self.fd, 0)
            return 0
        return size

    def since(self, start: int) -> str:
        _flush()
        end = os.fstat(self.fd).st_size
        if end <= start:
            return ""
        first = max(start, end - _MAX_LOG_BYTES)
        text = os.pread(self.fd, end - first, first).decode("utf-8", errors="replace")
        return f"[... first {first - start} bytes of output dropped ...]\n{text}" if first > start else text


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class _Worker:
    def __init__(self, log: _Log, channel: _Channel) -> None:
        self.log = log
        self.channel = channel
        self.cache = ExecuteCache()
        # One event loop for the worker's life: a loop per job would cost more than a trivial job.
        self.loop = asyncio.new_event_loop()
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
        cwd = os.getcwd()
        offset = self.log.start()
        try:
            done = self._run(start)
        finally:
            # A task that changed directory must not move the next one.
            if os.getcwd() != cwd:
                with contextlib.suppress(OSError):
                    os.chdir(cwd)
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
                    result, done = self._execute(request, children)
            else:
                result, done = self._execute(request, children)
        except Exception as e:
            # The template did not parse, or setting the environment or the affinity failed (an unknown cpu).
            return worker_pb2.Done(error=_frames.error(Kind.SETUP, e))
        if result.error is not None:
            done.error.CopyFrom(result.error)
        else:
            assert result.outputs is not None
            done.outputs = result.outputs
        return done

    def _execute(self, request: ExecuteInput, children: Children | None) -> tuple[ExecuteResult, worker_pb2.Done]:
        _reset_peak_rss()
        cpu_start = _cpu_seconds()
        try:
            # A fresh context per job: context variables a task sets do not reach the next job.
            result = contextvars.copy_context().run(self.loop.run_until_complete, _job(request))
        finally:
            if children is not None:
                children.close()
        return result, worker_pb2.Done(peak_memory=_peak_rss(), cpu_seconds=_cpu_seconds() - cpu_start)


async def _job(request: ExecuteInput) -> ExecuteResult:
    try:
        return await execute(request)
    finally:
        # Tasks the job started and left running do not outlive it (as with asyncio.run).
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current]
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
    channel = _Channel(requests, replies)
    worker = _Worker(_Log(log_fd), channel)
    channel.send(Message(ready=worker_pb2.Ready(pid=os.getpid())))
    with contextlib.suppress(OSError):  # the parent is gone
        start = channel.next_start()
        while start is not None:
            start = channel.finish(worker.handle(start))
            if start is None:
                start = channel.next_start()
