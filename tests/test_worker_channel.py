"""The worker's side of its pipes: who reads them when, and the order of Done and Withdrawn the parent relies on."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames
from flytelike._worker._channel import HELP_AFTER_SECONDS, Channel

Message = worker_pb2.WorkerMessage


class Pipes:
    def __init__(self) -> None:
        self.requests_read, self.requests_write = os.pipe()
        self.replies_read, self.replies_write = os.pipe()
        self.channel = Channel(self.requests_read, self.replies_write)
        self._decoder = _frames.Decoder()
        self._replies: list[Message] = []

    def send(self, *messages: Message) -> None:
        os.write(self.requests_write, b"".join(_frames.encode(m) for m in messages))

    def reply(self) -> Message:
        while not self._replies:
            self._replies = self._decoder.feed(os.read(self.replies_read, 1 << 16))
        return self._replies.pop(0)

    def close(self) -> None:
        os.close(self.requests_write)
        for fd in (self.replies_read, self.replies_write):
            os.close(fd)


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    p = Pipes()
    yield p
    p.close()


def start(action: str) -> Message:
    return Message(start=worker_pb2.Start(run_id="r", action_id=action, attempt=1))


def withdraw(action: str) -> Message:
    return Message(withdraw=worker_pb2.Withdraw(action_id=action, attempt=1))


def test_a_withdrawal_read_at_the_end_of_a_job_is_answered_before_its_done(pipes: Pipes) -> None:
    pipes.send(start("a"))
    first = pipes.channel.next_start()
    assert first is not None
    assert first.action_id == "a"
    # Sent while "a" runs (nobody reads during a short job): the worker finds both when "a" ends.
    pipes.send(start("b"), withdraw("b"), start("c"))
    following = pipes.channel.finish(worker_pb2.Done(outputs=b"1"))
    assert following is not None
    assert following.action_id == "c"
    assert pipes.reply().WhichOneof("body") == "withdrawn"
    assert pipes.reply().WhichOneof("body") == "done"


def test_a_job_that_runs_long_gets_its_queued_job_withdrawn_while_it_runs(pipes: Pipes) -> None:
    pipes.send(start("long"))
    assert pipes.channel.next_start() is not None
    pipes.send(start("queued"), withdraw("queued"))
    started = time.monotonic()
    answer = pipes.reply()  # read by the helper thread while "long" still runs
    assert answer.WhichOneof("body") == "withdrawn"
    assert answer.withdrawn.action_id == "queued"
    assert time.monotonic() - started < 50 * HELP_AFTER_SECONDS
    assert pipes.channel.finish(worker_pb2.Done()) is None
    assert pipes.reply().WhichOneof("body") == "done"


def test_a_withdrawal_after_the_done_ahead_of_it_is_ignored(pipes: Pipes) -> None:
    pipes.send(start("a"))
    assert pipes.channel.next_start() is not None
    assert pipes.channel.finish(worker_pb2.Done()) is None
    # The parent sent these before it read the Done: "b" counts as started there, so it must run here.
    pipes.send(start("b"), withdraw("b"))
    following = pipes.channel.next_start()
    assert following is not None
    assert following.action_id == "b"
    pipes.channel.finish(worker_pb2.Done())
    assert pipes.reply().WhichOneof("body") == "done"
    assert pipes.reply().WhichOneof("body") == "done"


def test_answers_to_calls_reach_a_running_job(pipes: Pipes) -> None:
    pipes.send(start("a"))
    assert pipes.channel.next_start() is not None
    got: list[worker_pb2.ChildResult] = []
    answered = threading.Event()

    def deliver(result: worker_pb2.ChildResult) -> None:
        got.append(result)
        answered.set()

    pipes.channel.submit(worker_pb2.SubmitChild(call=0, task="t.add@v"), deliver)
    assert pipes.reply().WhichOneof("body") == "submit_child"
    pipes.send(Message(child_result=worker_pb2.ChildResult(call=0, outputs=b"x")))
    assert answered.wait(5)
    assert got[0].outputs == b"x"


def test_the_end_of_input_ends_the_job_loop(pipes: Pipes) -> None:
    os.close(pipes.requests_write)
    pipes.requests_write = os.open(os.devnull, os.O_WRONLY)  # closed again by the fixture
    assert pipes.channel.next_start() is None
