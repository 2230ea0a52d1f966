"""A worker process of the pool as the parent sees it: its pipes through asyncio's subprocess protocol.

Frames are cut from the worker's stdout as the bytes arrive (:class:`flytelike._worker._frames.Decoder`) and
written to its stdin without waiting, so a message costs one pipe write and, at the other end, one wake-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import deque
from collections.abc import Callable
from pathlib import Path

import anyio

from flytelike._backends.local._calls import Place
from flytelike._backends.local._memory import kill_tree
from flytelike._backends.local._places import Turn
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames

__all__ = ["Connection", "Worker", "exit_description", "log_tail", "startup_failure"]

Message = worker_pb2.WorkerMessage

START_TIMEOUT_SECONDS = 60.0
EXIT_WAIT_SECONDS = 5.0
CRASH_LOG_CHARS = 2000
_MAX_STDERR = 64 * 1024


class Connection(asyncio.SubprocessProtocol):
    """A worker's pipes as asyncio delivers them: frames are cut from its stdout as the bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._decoder = _frames.Decoder()
        self._inbox: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.lost: str | None = None
        self.stderr = bytearray()
        self.stderr_closed: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        # Withdrawn answers a Withdraw of a queued job, not the job whose frames are being read: handled at once.
        self.on_withdrawn: Callable[[worker_pb2.Withdrawn], None] | None = None

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            if self.lost is None:
                try:
                    for message in self._decoder.feed(data):
                        if message.WhichOneof("body") == "withdrawn" and self.on_withdrawn is not None:
                            self.on_withdrawn(message.withdrawn)
                        else:
                            self._inbox.append(message)
                except _frames.FrameError as e:
                    self.lost = f"it sent a malformed frame: {e}"
                self._wake()
        elif len(self.stderr) < _MAX_STDERR:
            self.stderr += data[: _MAX_STDERR - len(self.stderr)]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1 and self.lost is None:
            self.lost = "its output closed"
            self._wake()
        elif fd == 2 and not self.stderr_closed.done():
            self.stderr_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Message | None:
        """The next message; None once no more will come (``lost`` says why)."""
        while not self._inbox:
            if self.lost is not None:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._inbox.popleft()


class Worker:
    def __init__(self, transport: asyncio.SubprocessTransport, connection: Connection, log_path: str) -> None:
        self.transport = transport
        self.connection = connection
        self.pid: int = transport.get_pid()
        self.log_path = log_path
        self.closed = False
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        self._stdin = stdin
        self.receive = connection.receive
        # The job running on it (its place, and whether it has a memory limit) and the jobs queued behind it.
        self.place: Place | None = None
        self.limited = False
        self.turns: deque[Turn] = deque()
        self.cgroup: Path | None = None  # its own cgroup, where the pool limits memory through cgroup v2

    @property
    def returncode(self) -> int | None:
        return self.transport.get_returncode()

    def send(self, message: Message) -> None:
        # A worker that died cannot take it; the job's reader reports how it died.
        if not self._stdin.is_closing():
            self._stdin.write(_frames.encode(message))

    def kill(self) -> None:
        if self.returncode is None:
            kill_tree(self.pid)

    async def wait(self) -> None:
        await asyncio.shield(self.connection.exited)

    async def close(self, grace: float = 0.0) -> None:
        """Stop the worker (end of input asks it to exit; SIGKILL after ``grace``) and reap it."""
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            if grace > 0 and self.returncode is None:
                self._stdin.close()
                with anyio.move_on_after(grace):
                    await self.wait()
            self.kill()
            await self.wait()
            self.transport.close()


def log_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * CRASH_LOG_CHARS))
            return f.read().decode("utf-8", errors="replace")[-CRASH_LOG_CHARS:]
    except OSError:
        return ""


def exit_description(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by signal {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


async def startup_failure(worker: Worker, *, timed_out: bool) -> str:
    worker.kill()
    with anyio.move_on_after(EXIT_WAIT_SECONDS):
        await worker.wait()
        await asyncio.shield(worker.connection.stderr_closed)
    how = f"no reply in {START_TIMEOUT_SECONDS:.0f} s" if timed_out else exit_description(worker.returncode)
    text = worker.connection.stderr.decode("utf-8", errors="replace").strip()
    return f"{how}: {text[-CRASH_LOG_CHARS:]}" if text else how
