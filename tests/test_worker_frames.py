"""Frames of the worker protocol: every message round-trips in chunks of any size; garbage, oversized and truncated
frames are a clear FrameError, never a hang or a crash."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flytelike._proto.worker.v1 import worker_pb2
from flytelike._worker import _frames
from flytelike._worker._frames import HEADER, MAX_FRAME, Decoder, FrameError

Message = worker_pb2.WorkerMessage
Kind = worker_pb2.Error.Kind

_text = st.text(max_size=20)
_bytes = st.binary(max_size=64)
_error = st.builds(
    worker_pb2.Error,
    kind=st.sampled_from([Kind.USER, Kind.OOM, Kind.SETUP, Kind.SYSTEM, Kind.TIMEOUT]),
    type_name=_text,
    message=_text,
    traceback=_text,
)
messages = st.one_of(
    st.builds(lambda pid: Message(ready=worker_pb2.Ready(pid=pid)), st.integers(0, 2**31)),
    st.builds(
        lambda action, inputs, env, cpus: Message(
            start=worker_pb2.Start(action_id=action, template=b"t", inputs=inputs, env=env, cpus=cpus, calls=True)
        ),
        _text,
        _bytes,
        st.dictionaries(_text, _text, max_size=3),
        st.lists(st.integers(0, 255), max_size=4),
    ),
    st.builds(
        lambda call, inputs: Message(
            submit_child=worker_pb2.SubmitChild(call=call, child_action_id=f"0.{call}", task="e.t@v", inputs=inputs)
        ),
        st.integers(0, 2**40),
        _bytes,
    ),
    st.builds(
        lambda call, out: Message(child_result=worker_pb2.ChildResult(call=call, outputs=out)),
        st.integers(0, 9),
        _bytes,
    ),
    st.builds(lambda e: Message(child_result=worker_pb2.ChildResult(call=1, error=e)), _error),
    st.builds(lambda call: Message(cancel_child=worker_pb2.CancelChild(call=call)), st.integers(0, 9)),
    st.builds(lambda data: Message(logs=worker_pb2.Logs(data=data)), _bytes),
    st.just(Message(heartbeat=worker_pb2.Heartbeat())),
    st.builds(
        lambda out, peak: Message(done=worker_pb2.Done(outputs=out, peak_memory=peak)), _bytes, st.integers(0, 2**40)
    ),
    st.builds(lambda e: Message(done=worker_pb2.Done(error=e, logs="x")), _error),
)


@given(st.lists(messages, max_size=6), st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_messages_round_trip_whatever_the_chunk_sizes(sent: list[Message], sizes: list[int]) -> None:
    stream = b"".join(_frames.encode(m) for m in sent)
    decoder = Decoder()
    received: list[Message] = []
    position, i = 0, 0
    while position < len(stream):
        size = sizes[i % len(sizes)]
        received += decoder.feed(stream[position : position + size])
        position += size
        i += 1
    decoder.end()
    assert received == sent


@given(st.binary(max_size=200), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_garbage_is_decoded_or_refused_never_anything_else(data: bytes, sizes: list[int]) -> None:
    decoder = Decoder()
    position, i = 0, 0
    try:
        while position < len(data):
            for message in decoder.feed(data[position : position + sizes[i % len(sizes)]]):
                assert message.WhichOneof("body") is not None
            position += sizes[i % len(sizes)]
            i += 1
        decoder.end()
    except FrameError as e:
        message = str(e)
    else:
        message = "decoded"
    assert message


@given(messages, st.data())
def test_a_truncated_frame_is_an_error_at_the_end_of_the_stream(message: Message, data: st.DataObject) -> None:
    frame = _frames.encode(message)
    cut = data.draw(st.integers(1, len(frame) - 1))
    decoder = Decoder()
    assert decoder.feed(frame[:cut]) == []
    with pytest.raises(FrameError, match="ended inside a frame"):
        decoder.end()


@given(st.integers(MAX_FRAME + 1, 2**64 - 1))
def test_a_length_no_message_can_have_is_refused_at_once(size: int) -> None:
    with pytest.raises(FrameError, match="more than"):
        Decoder().feed(HEADER.pack(size))


def test_a_frame_without_a_known_message_is_refused() -> None:
    with pytest.raises(FrameError, match="no known worker message"):
        Decoder().feed(HEADER.pack(0))
    with pytest.raises(FrameError, match="not a worker message"):
        Decoder().feed(HEADER.pack(3) + b"\xff\xff\xff")


@given(st.lists(messages, max_size=4), st.binary(max_size=40))
def test_reading_a_pipe_never_hangs_on_a_broken_stream(sent: list[Message], tail: bytes) -> None:
    read_fd, write_fd = os.pipe()
    payload = b"".join(_frames.encode(m) for m in sent) + tail

    def feed() -> None:
        _frames.write(write_fd, payload)
        os.close(write_fd)

    writer = threading.Thread(target=feed)
    writer.start()
    received: list[Message] = []
    try:
        while (message := _frames.read(read_fd)) is not None:
            received.append(message)
    except FrameError:
        pass
    finally:
        writer.join()
        os.close(read_fd)
    assert received[: len(sent)] == sent[: len(received)]
