"""A warm worker process for process-isolated local tasks: ``python -m flytelike._worker LOG_PATH``.

The parent (:mod:`flytelike._backends.local._process_pool`) sends length-prefixed pickle frames on this process's stdin
and reads replies on its stdout. At start-up both descriptors are moved off fds 0 and 1, which then point at
``/dev/null``: fds 0, 1 and 2 belong to the task, and a task that prints or reads input must never corrupt the
protocol. During a job fds 1 and 2 point at ``LOG_PATH`` so that output written by C code is captured too.

Frames are an 8-byte big-endian length followed by a pickled dict. The first frame the worker sends is
``{"kind": "ready", "pid": ...}``; then each request is answered by exactly one reply whose ``kind`` is ``ok``,
``error`` (the task raised), ``oom`` (a MemoryError) or ``setup`` (the job could not be started). End of input
means stop.

While a job whose request has ``"calls": True`` runs, the task's calls to other tasks go to the parent, which runs
them as child actions of the job's action: the worker sends ``{"kind": "call", "call": n, "task": "env.task",
"inputs": <pickled values>}`` (``n`` counts up over the worker's life) and gets back ``{"kind": "result", "call": n,
"outputs": <pickled named outputs>}`` or ``{"kind": "call_error", "call": n, "exception": ..., ...}``; a call the task
stops waiting for is withdrawn with ``{"kind": "cancel", "call": n}``. A reader thread and a writer thread own the
pipes, so an async task can have many calls outstanding without its event loop ever blocking on a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import io
import itertools
import os
import pickle
import queue
import re
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from flytelike import _context
from flytelike._backends.local import _frames
from flytelike._loader import find_task, load_file, load_module
from flytelike.errors import BackendError, SpecError

if TYPE_CHECKING:
    from flytelike._task import Task

__all__ = ["main"]

# The whole log is returned with the reply; past this size only the tail is kept so a chatty task cannot
# exhaust the parent's memory.
_MAX_LOG_BYTES = 8 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PLUMBING = (__file__, os.path.dirname(asyncio.__file__))


Deliver = Callable[[dict[str, Any]], None]


class _Channel:
    """The pipes to the parent, shared by the job loop, the tasks' calls and two threads.

    The reader thread takes every frame off the request pipe: answers to calls go to whoever waits for them, job
    requests to the main thread (``jobs``; ``None`` at end of input). The writer thread writes frames in the order
    they were queued, so neither an event loop nor a task's thread blocks on a full pipe. Frames are pickled by the
    thread that queues them, where a failure (or a MemoryError under the job's memory cap) reaches the task.
    """

    def __init__(self, requests: int, replies: int) -> None:
        self.jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: dict[int, Deliver] = {}
        self._numbers = itertools.count()
        self._ended = False
        self._writer = threading.Thread(target=self._write_all, args=(replies,), name="flytelike-out", daemon=True)
        self._writer.start()
        threading.Thread(target=self._read_all, args=(requests,), name="flytelike-in", daemon=True).start()

    def send(self, message: Mapping[str, Any]) -> None:
        self._out.put(_frames.encode(message))

    def call(self, task: str, inputs: bytes, deliver: Deliver) -> int:
        """Send a call; ``deliver`` gets the answer, on the reader thread. Returns the call's number."""
        with self._lock:
            if self._ended:
                raise BackendError(f"task {task} cannot be called: the run this worker served has ended")
            number = next(self._numbers)
            self._waiting[number] = deliver
            # Queued under the lock: calls leave in the order they were numbered, which is the order in which the
            # parent numbers the child actions.
            self._out.put(_frames.encode({"kind": "call", "call": number, "task": task, "inputs": inputs}))
        return number

    def withdraw(self, number: int) -> None:
        """Nobody waits for the call any more: tell the parent to cancel it (unless it was answered already)."""
        with self._lock:
            if self._waiting.pop(number, None) is None:
                return
        self.send({"kind": "cancel", "call": number})

    def abandon(self, numbers: Iterable[int], reason: str) -> None:
        """Fail the calls among ``numbers`` still unanswered, without a word to the parent."""
        with self._lock:
            left = [(n, d) for n in numbers if (d := self._waiting.pop(n, None)) is not None]
        for number, deliver in left:
            deliver(_lost(number, reason))

    def close(self) -> None:
        self._out.put(None)
        self._writer.join(timeout=5)

    def _write_all(self, fd: int) -> None:
        while (data := self._out.get()) is not None:
            try:
                _frames.write(fd, data)
            except OSError:
                return  # the parent is gone; the reader sees the end of input and the worker stops

    def _read_all(self, fd: int) -> None:
        try:
            while (message := _frames.read(fd)) is not None:
                if message.get("kind") in ("result", "call_error"):
                    with self._lock:
                        deliver = self._waiting.pop(message["call"], None)
                    if deliver is not None:  # None: a call its job no longer waits for
                        deliver(message)
                else:
                    self.jobs.put(message)
        except (OSError, pickle.UnpicklingError, EOFError):
            pass
        finally:
            with self._lock:
                self._ended = True
                waiting, self._waiting = self._waiting, {}
            for number, deliver in waiting.items():
                deliver(_lost(number, "the run this worker served has ended"))
            self.jobs.put(None)


def _lost(number: int, reason: str) -> dict[str, Any]:
    return {"kind": "call_error", "call": number, "exception": pickle.dumps(BackendError(reason))}


class _Calls:
    """The run context of one job (a :class:`flytelike._context.Submitter`): calling a task sends it to the
    parent, which runs it as a child action of the job's action, exactly as for a call in the parent's process."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self._numbers: set[int] = set()
        self._open = True

    def submit(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        loop = _running_loop()
        if loop is None:
            # A sync task (or a thread) calling an async task cannot await it: block for the result, as in-process.
            return self.submit_blocking(task, values)
        future: asyncio.Future[Any] = loop.create_future()

        def deliver(answer: dict[str, Any]) -> None:
            # RuntimeError: the loop has closed, as the job ended without awaiting this call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, task, answer)

        number = self._start(task, values, deliver)

        def withdraw(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                self._channel.withdraw(number)

        future.add_done_callback(withdraw)
        return future

    def submit_blocking(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        answered = threading.Event()
        answers: list[dict[str, Any]] = []

        def deliver(answer: dict[str, Any]) -> None:
            answers.append(answer)
            answered.set()

        self._start(task, values, deliver)
        answered.wait()
        return _outcome(task, answers[0])

    def in_event_loop_thread(self) -> bool:
        return _running_loop() is not None

    def close(self) -> None:
        """The job ended: later calls fail, and threads still waiting for an answer get an error."""
        self._open = False
        # A copy taken at once: a thread the task left running may still be adding a call.
        self._channel.abandon(frozenset(self._numbers), "the task that made this call has returned")

    def _start(self, task: Task[..., Any], values: Mapping[str, Any], deliver: Deliver) -> int:
        if not self._open:
            raise BackendError(f"task {task.full_name} was called after the task running in this process returned")
        _check_by_name(task)
        inputs = pickle.dumps(dict(values), protocol=pickle.HIGHEST_PROTOCOL)
        number = self._channel.call(task.full_name, inputs, deliver)
        self._numbers.add(number)
        return number


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _check_by_name(task: Task[..., Any]) -> None:
    """The parent finds a called task by its name: refuse a variant that the name would not find."""
    declared = task.env.tasks.get(task.name)
    if declared is task or (declared is not None and declared.options == task.options):
        return
    raise SpecError(
        task.full_name,
        task,
        "a process-isolated task calls tasks by name, and this is not the task declared under that name "
        "(an override(...) made in the task or at module level)",
        accepted=f"a task declared with @{task.env.name}.task(name=..., ...), or call it from a task that is not "
        "process-isolated",
    )


def _settle(future: asyncio.Future[Any], task: Task[..., Any], answer: dict[str, Any]) -> None:
    if future.done():
        return  # the task stopped waiting (cancelled) before the answer came
    try:
        future.set_result(_outcome(task, answer))
    except Exception as e:
        future.set_exception(e)


def _outcome(task: Task[..., Any], answer: Mapping[str, Any]) -> Any:
    if answer["kind"] == "result":
        return task.interface.result(pickle.loads(answer["outputs"]))
    raise _call_error(answer)


def _call_error(answer: Mapping[str, Any]) -> BaseException:
    """The child's error as the parent raised it; a RuntimeError with its text when it does not unpickle here."""
    error = _frames.unpickle_error(answer.get("exception"))
    if error is not None:
        return error
    return RuntimeError(f"{answer.get('type_name')}: {answer.get('message')}\n{answer.get('traceback', '')}")


def _status_kib(field: str) -> int:
    with open("/proc/self/status", "rb") as f:
        match = re.search(rb"^" + field.encode() + rb":\s+(\d+)", f.read(), re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def _reset_peak_rss() -> None:
    # "5" resets VmHWM to the current RSS, so the peak read at the end belongs to this job alone.
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
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


@contextlib.contextmanager
def _address_space_limit(limit: int) -> Iterator[None]:
    """Make one allocation that can never fit fail at once with MemoryError instead of being swapped in.

    The parent's RSS polling cannot see an allocation that happens between two polls, so the address space is
    capped at what is mapped now plus the limit.
    """
    if limit <= 0:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    new_soft = _status_kib("VmSize") + limit
    if hard != resource.RLIM_INFINITY:
        new_soft = min(new_soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (new_soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _captured_output(log_fd: int) -> Iterator[None]:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.ftruncate(log_fd, 0)
    saved = os.dup(1), os.dup(2)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _read_log(log_fd: int) -> str:
    size = os.fstat(log_fd).st_size
    start = max(0, size - _MAX_LOG_BYTES)
    data = os.pread(log_fd, size - start, start)
    text = data.decode("utf-8", errors="replace")
    return f"[... first {start} bytes of output dropped ...]\n{text}" if start else text


class _Worker:
    def __init__(self, log_fd: int, channel: _Channel) -> None:
        self.log_fd = log_fd
        self.channel = channel
        self.modules: dict[tuple[str, str], ModuleType] = {}

    def _load(self, request: Mapping[str, Any]) -> Callable[..., Any]:
        key = ("file", request["file"]) if request.get("file") else ("module", request["module"])
        module = self.modules.get(key)
        if module is None:
            module = load_file(key[1]) if key[0] == "file" else load_module(key[1])
            self.modules[key] = module
        fn: Callable[..., Any] = find_task(module, request["task"]).fn
        return fn

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        env: dict[str, str] = dict(request.get("env") or {})
        if request.get("cuda_visible_devices") is not None:
            env["CUDA_VISIBLE_DEVICES"] = request["cuda_visible_devices"]
        cwd = os.getcwd()
        with _captured_output(self.log_fd):
            try:
                fn = self._load(request)
                inputs: dict[str, Any] = pickle.loads(request["inputs"])
            except BaseException as e:
                reply = _failure("setup", e)
            else:
                cpus = tuple(request.get("cpus") or ())
                calls = _Calls(self.channel) if request.get("calls") else None
                reply = self._run(fn, inputs, env, cpus, int(request.get("memory_limit", 0)), calls)
            finally:
                # A task that changed directory must not move the next one.
                with contextlib.suppress(OSError):
                    os.chdir(cwd)
        reply["logs"] = _read_log(self.log_fd)
        return reply

    def _run(
        self,
        fn: Callable[..., Any],
        inputs: dict[str, Any],
        env: dict[str, str],
        cpus: tuple[int, ...],
        limit: int,
        calls: _Calls | None,
    ) -> dict[str, Any]:
        try:
            with _environment(env), _affinity(cpus), _current(calls):
                _reset_peak_rss()
                cpu_start = _cpu_seconds()
                try:
                    with _address_space_limit(limit):
                        value = fn(**inputs)
                        if inspect.iscoroutine(value):
                            # The coroutine's tasks copy this context, and with it the job's calls.
                            value = asyncio.run(value)
                        outputs = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                except MemoryError as e:
                    reply = _failure("oom", e)
                except BaseException as e:
                    reply = _failure("error", e)
                else:
                    reply = {"kind": "ok", "outputs": outputs}
                reply["cpu_time"] = _cpu_seconds() - cpu_start
                reply["peak_memory"] = _status_kib("VmHWM")
                return reply
        except BaseException as e:
            # Setting the environment or the affinity failed (an unknown cpu id, for example).
            return _failure("setup", e)


@contextlib.contextmanager
def _current(calls: _Calls | None) -> Iterator[None]:
    token = _context.use(calls)
    try:
        yield
    finally:
        _context.reset(token)
        if calls is not None:
            calls.close()


def _failure(kind: str, error: BaseException) -> dict[str, Any]:
    # The leading frames are the worker's and asyncio's calls into the task; users only need theirs.
    tb: TracebackType | None = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_PLUMBING):
        tb = tb.tb_next
    return {"kind": kind, **_frames.error_fields(error, tb)}


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
    worker = _Worker(log_fd, channel)
    channel.send({"kind": "ready", "pid": os.getpid()})
    while (request := channel.jobs.get()) is not None:
        channel.send(worker.handle(request))
    channel.close()


if __name__ == "__main__":
    main()
