"""The warm worker's pipes to its parent, shared by the job loop, the tasks' calls and a helper thread.

Frames on the request pipe are read by one thread at a time, the one holding the *reading role*:

- between jobs, the main thread itself: it reads the next ``Start`` (and whatever else the pipe holds) and runs it,
  so a short job costs no thread switch at all;
- while a job runs, nobody at first. A short job never needs a reader: the frames sent meanwhile wait in the pipe
  for the main thread. The helper thread takes the role when the job calls a task (its answers must reach it while
  it runs) or once the same job has run for :data:`HELP_AFTER_SECONDS` (a ``Withdraw`` of a job queued behind a
  long one must be answered while the long one runs), and reads until that job has ended.

Whoever reads a frame handles it: answers to calls go to whoever waits for them, a ``Start`` to the queue of jobs,
a ``Withdraw`` removes a queued ``Start`` (answered with ``Withdrawn``) if the job ahead of it still runs. The main
thread sends a job's ``Done`` and takes the next queued ``Start`` under one lock, so the parent can tell from the
order of ``Done`` and ``Withdrawn`` whether a job it withdrew started: a ``Start`` the parent sent before it got a
``Done`` runs right after it unless a ``Withdrawn`` came first.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque

from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames
from flytelike._worker._children import Deliver
from flytelike.errors import BackendError

__all__ = ["HELP_AFTER_SECONDS", "Channel"]

Kind = worker_pb2.Error.Kind
Message = worker_pb2.WorkerMessage

HELP_AFTER_SECONDS = 0.01
"""How long a job runs before the helper thread reads the pipe for it (when it made no call)."""
_IDLE_LOOKS = 100  # a second without a job at HELP_AFTER_SECONDS a look


class Channel:
    """The request and reply pipes of a worker (see the module's docstring)."""

    def __init__(self, requests: int, replies: int) -> None:
        self._requests = requests
        self._replies = replies
        self._sending = threading.Lock()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # the main thread waits on it
        self._helper = threading.Condition(self._lock)  # the helper thread waits on it
        self._waiting: dict[int, Deliver] = {}
        self._starts: deque[worker_pb2.Start] = deque()
        self._running = False  # a job runs (so a Start queued behind it can still be withdrawn)
        self._job = 0  # serial of the job that runs or ran last
        self._calls = False  # the running job made a call: its answers need a reader
        self._reader: str | None = None  # "main" or "helper": who holds the reading role
        self._helper_idle = False  # the helper waits with no timeout (no job ran when it last looked)
        self._ended = False
        self._decoder = _frames.Decoder()
        self._ready = select.poll()
        self._ready.register(requests, select.POLLIN)
        threading.Thread(target=self._help, name="flytelike-in", daemon=True).start()

    # --- sending ------------------------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        data = _frames.encode(message)
        with self._sending:
            _frames.write(self._replies, data)

    # --- the job loop (main thread) -----------------------------------------------------------------------------

    def next_start(self) -> worker_pb2.Start | None:
        """The next job, reading or waiting for one; None at the end of input (or when the parent is gone)."""
        with self._changed:
            while True:
                if self._starts:
                    return self._begin(self._starts.popleft())
                if self._ended:
                    return None
                if self._reader is None:
                    self._reader = "main"
                    break
                self._changed.wait()
        try:
            while True:
                if not self._read():
                    return None
                with self._changed:
                    if self._starts:
                        self._reader = None
                        return self._begin(self._starts.popleft())
        finally:
            with self._changed:
                if self._reader == "main":
                    self._reader = None
                    self._helper.notify()

    def finish(self, done: worker_pb2.Done) -> worker_pb2.Start | None:
        """Send a job's Done and take the job queued behind it, if any (then it has started).

        Frames already in the pipe are read first (unless the helper is reading), so that a ``Withdraw`` of the
        job queued next is answered before the ``Done`` that would start it.
        """
        data = _frames.encode(Message(done=done))
        with self._changed:
            drain = self._reader is None and not self._ended
            if drain:
                self._reader = "main"
        if drain:
            try:
                while self._ready.poll(0) and self._read():
                    pass
            finally:
                with self._changed:
                    self._reader = None
        with self._changed:
            following = self._starts.popleft() if self._starts else None
            self._running = False
            if following is not None:
                self._begin(following)
            with self._sending:
                _frames.write(self._replies, data)
        return following

    def _begin(self, start: worker_pb2.Start) -> worker_pb2.Start:
        # Under the lock.
        self._running = True
        self._job += 1
        self._calls = False
        if self._helper_idle:
            self._helper.notify()  # the helper starts timing this job
        return start

    # --- calls of the running job -------------------------------------------------------------------------------

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        with self._changed:
            if self._ended:
                raise BackendError(f"task {message.task} cannot be called: the run this worker served has ended")
            self._waiting[message.call] = deliver
            if not self._calls:
                self._calls = True
                self._helper.notify()  # its answer needs a reader now
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

    # --- reading ------------------------------------------------------------------------------------------------

    def _read(self) -> bool:
        """Read what the pipe holds (waiting for it) and handle every frame; False at the end of input."""
        try:
            data = os.read(self._requests, 1 << 16)
            if not data:
                self._decoder.end()
                messages = None
            else:
                messages = self._decoder.feed(data)
        except (OSError, _frames.FrameError):
            messages = None
        if messages is None:
            self._end()
            return False
        for message in messages:
            self._handle(message)
        return True

    def _handle(self, message: Message) -> None:
        which = message.WhichOneof("body")
        if which == "child_result":
            with self._lock:
                deliver = self._waiting.pop(message.child_result.call, None)
            if deliver is not None:  # None: a call its job no longer waits for
                deliver(message.child_result)
        elif which == "start":
            with self._changed:
                self._starts.append(message.start)
                self._changed.notify()
        elif which == "withdraw":
            self._withdraw(message.withdraw)

    def _withdraw(self, request: worker_pb2.Withdraw) -> None:
        with self._changed:
            if not self._running:
                return  # the Done ahead of it was sent: it has started, or starts now
            for start in self._starts:
                if (start.action_id, start.attempt) == (request.action_id, request.attempt):
                    self._starts.remove(start)
                    answer = worker_pb2.Withdrawn(action_id=request.action_id, attempt=request.attempt)
                    self.send(Message(withdrawn=answer))
                    return

    def _end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify()
            self._helper.notify()
        self.abandon("the run this worker served has ended")

    def _help(self) -> None:
        """The helper thread: takes the reading role for a job that calls tasks or runs long, until it ends."""
        timed = -1  # the job whose running time is being measured
        idle = 0  # looks in a row that found no job running
        while True:
            with self._changed:
                while True:
                    if self._ended:
                        return
                    if self._running and self._reader is None and (self._calls or timed == self._job):
                        self._reader = "helper"
                        job = self._job
                        break
                    if self._running and self._reader is None:
                        timed, idle = self._job, 0
                    else:
                        timed, idle = -1, idle + 1
                    # Between jobs that follow each other closely the helper keeps looking, so starting a job costs
                    # no wake-up; a worker idle for a while lets it sleep until a job starts.
                    self._helper_idle = idle > _IDLE_LOOKS
                    self._helper.wait(None if self._helper_idle else HELP_AFTER_SECONDS)
                    self._helper_idle = False
            try:
                while self._read():
                    with self._changed:
                        if not self._running or self._job != job:
                            break
            finally:
                with self._changed:
                    self._reader = None
                    self._changed.notify()  # the main thread may wait to read


def _lost(call: int, reason: str) -> worker_pb2.ChildResult:
    return worker_pb2.ChildResult(
        call=call,
        error=worker_pb2.Error(kind=Kind.SYSTEM, type_name="flytelike.errors.BackendError", message=reason),
    )
