"""A warm worker process for process-isolated local tasks: ``python -m flytelike._worker LOG_PATH``.

The parent (:mod:`flytelike._backends._process_pool`) sends length-prefixed pickle frames on this process's stdin
and reads replies on its stdout. At start-up both descriptors are moved off fds 0 and 1, which then point at
``/dev/null``: fds 0, 1 and 2 belong to the task, and a task that prints or reads input must never corrupt the
protocol. During a job fds 1 and 2 point at ``LOG_PATH`` so that output written by C code is captured too.

Frames are an 8-byte big-endian length followed by a pickled dict. The first frame the worker sends is
``{"kind": "ready", "pid": ...}``; then each request is answered by exactly one reply whose ``kind`` is ``ok``,
``error`` (the task raised), ``oom`` (a MemoryError) or ``setup`` (the job could not be started). End of input
means stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import io
import os
import pickle
import re
import resource
import signal
import struct
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType, TracebackType
from typing import Any

from flytelike._loader import find_task, load_file, load_module

__all__ = ["main"]

_HEADER = struct.Struct(">Q")
# The whole log is returned with the reply; past this size only the tail is kept so a chatty task cannot
# exhaust the parent's memory.
_MAX_LOG_BYTES = 8 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PLUMBING = (__file__, os.path.dirname(asyncio.__file__))


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> dict[str, Any] | None:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(header)[0])
    if body is None:
        return None
    message: dict[str, Any] = pickle.loads(body)
    return message


def _send(fd: int, message: Mapping[str, Any]) -> None:
    body = pickle.dumps(dict(message), protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


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
    def __init__(self, log_fd: int) -> None:
        self.log_fd = log_fd
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
                reply = self._run(fn, inputs, env, cpus, int(request.get("memory_limit", 0)))
            finally:
                # A task that changed directory must not move the next one.
                with contextlib.suppress(OSError):
                    os.chdir(cwd)
        reply["logs"] = _read_log(self.log_fd)
        return reply

    def _run(
        self, fn: Callable[..., Any], inputs: dict[str, Any], env: dict[str, str], cpus: tuple[int, ...], limit: int
    ) -> dict[str, Any]:
        try:
            with _environment(env), _affinity(cpus):
                _reset_peak_rss()
                cpu_start = _cpu_seconds()
                try:
                    with _address_space_limit(limit):
                        value = fn(**inputs)
                        if inspect.iscoroutine(value):
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


def _failure(kind: str, error: BaseException) -> dict[str, Any]:
    cls = type(error)
    # The leading frames are the worker's and asyncio's calls into the task; users only need theirs.
    tb: TracebackType | None = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_PLUMBING):
        tb = tb.tb_next
    try:
        pickled: bytes | None = pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pickled = None
    return {
        "kind": kind,
        "type_name": f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(cls, error, tb)),
        "exception": pickled,
    }


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
    worker = _Worker(log_fd)
    _send(replies, {"kind": "ready", "pid": os.getpid()})
    while (request := _receive(requests)) is not None:
        _send(replies, worker.handle(request))


if __name__ == "__main__":
    main()
