"""The controller's ActionService over gRPC: a real grpc.aio server on loopback, in a thread of its own (as the
controller is another process for a pod), and the real client a task's process uses, driven through ``Children``
as a task's calls are."""

from __future__ import annotations

import asyncio
import doctest
import logging
import pickle
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType

import anyio
import anyio.from_thread
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st

import flytelike as fl
from flytelike._proto.remote.v1 import actions_pb2, actions_pb2_grpc
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._remote import SERVICE_NAME, ActionClient, ActionServer, RunCalls, _address, _client, _logs, _server
from flytelike._remote._logs import LogCursor, LogOutbox
from flytelike._serde import decode_values, encode_values
from flytelike._task import Task
from flytelike._worker._children import Children
from flytelike.errors import BackendError, ControllerUnreachableError, SpecError, TaskFailedError

env = fl.TaskEnvironment(name="remote")


@env.task
async def add(x: int, y: int) -> int:
    return x + y


@env.task
async def fail(message: str) -> int:
    raise ValueError(message)


@env.task
async def slow(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 0


TASKS: dict[str, Task[..., object]] = {t.full_name: t for t in (add, fail, slow)}
Kind = worker_pb2.Error.Kind


@dataclass
class Controller:
    """A controller's side of one run: runs the child tasks of this module in the server's event loop."""

    submitted: list[tuple[str, int, str]] = field(default_factory=list)
    output: list[tuple[str, int, bytes]] = field(default_factory=list)
    beats: list[tuple[str, int]] = field(default_factory=list)
    beat: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    raise_in_submit: bool = False

    async def submit(self, action_id: str, attempt: int, child: worker_pb2.SubmitChild) -> worker_pb2.ChildResult:
        self.submitted.append((action_id, attempt, child.child_action_id))
        if self.raise_in_submit:
            raise RuntimeError("the controller lost its records")
        task = TASKS[child.task.split("@")[0]]
        values = decode_values(child.inputs, task.interface.inputs, where=task.full_name)
        self.started.set()
        try:
            value = await task.fn(**values)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        except Exception as e:
            error = worker_pb2.Error(kind=Kind.USER, type_name=type(e).__name__, message=str(e), task=task.full_name)
            return worker_pb2.ChildResult(call=child.call, error=error)
        outputs = task.interface.check_outputs(value, task=task.full_name)
        data = encode_values(outputs, task.interface.outputs, where=task.full_name)
        return worker_pb2.ChildResult(call=child.call, outputs=data)

    def logs(self, action_id: str, attempt: int, data: bytes) -> None:
        self.output.append((action_id, attempt, data))

    def heartbeat(self, action_id: str, attempt: int) -> None:
        self.beats.append((action_id, attempt))
        self.beat.set()


@dataclass
class Served:
    """The server, running in its own thread's event loop."""

    portal: anyio.from_thread.BlockingPortal
    server: ActionServer

    @property
    def address(self) -> str:
        return self.server.address

    def register(self, run_id: str, calls: RunCalls) -> str:
        return self.portal.call(self.server.register, run_id, calls)

    def unregister(self, run_id: str) -> None:
        self.portal.call(self.server.unregister, run_id)

    def connect(self, token: str, *, run_id: str = "r1", heartbeat_every: float = 5.0) -> ActionClient:
        return ActionClient.connect(
            self.address,
            token=token,
            run_id=run_id,
            action_id="a0",
            attempt=1,
            timeout=5,
            heartbeat_every=heartbeat_every,
        )


@pytest.fixture
def served() -> Iterator[Served]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = ActionServer("127.0.0.1:0", grace=0.2)
        with portal.wrap_async_context_manager(server):
            yield Served(portal, server)


@pytest.fixture
def controller(served: Served) -> Controller:
    return Controller()


@pytest.fixture
def client(served: Served, controller: Controller) -> Iterator[ActionClient]:
    client = served.connect(served.register("r1", controller))
    try:
        yield client
    finally:
        client.close()


def raw_stub(address: str) -> tuple[grpc.Channel, actions_pb2_grpc.ActionServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, actions_pb2_grpc.ActionServiceStub(channel)


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()  # type: ignore[no-any-return, attr-defined]


# --- calls ---------------------------------------------------------------------------------------------------------


def test_a_call_returns_the_child_actions_outputs(client: ActionClient, controller: Controller) -> None:
    children = Children(client, "a0")

    async def call() -> int:
        return await children.submit(add, {"x": 2, "y": 40})  # type: ignore[no-any-return]

    assert asyncio.run(call()) == 42
    assert controller.submitted == [("a0", 1, "a0.0")]


def test_a_failed_child_raises_its_error_in_the_caller(client: ActionClient) -> None:
    children = Children(client, "a0")
    with pytest.raises(TaskFailedError, match="no such shard") as raised:
        children.submit_blocking(fail, {"message": "no such shard"})
    assert raised.value.type_name == "ValueError"  # type: ignore[attr-defined]
    assert raised.value.task == fail.full_name


def test_an_exception_in_the_controller_becomes_a_system_error_result(
    client: ActionClient, controller: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    controller.raise_in_submit = True
    results: list[worker_pb2.ChildResult] = []
    answered = threading.Event()
    client.submit(
        worker_pb2.SubmitChild(call=0, child_action_id="a0.0", task="x@1", inputs=b""),
        lambda r: (results.append(r), answered.set()),
    )
    assert answered.wait(5)
    (result,) = results
    assert result.WhichOneof("outcome") == "error"
    assert result.error.kind == Kind.SYSTEM
    assert result.error.type_name == "RuntimeError"
    assert result.error.message == "the controller lost its records"
    assert "lost its records" in caplog.text


def test_many_concurrent_calls_each_get_their_own_answer(client: ActionClient, controller: Controller) -> None:
    children = Children(client, "a0")

    async def fan_out() -> list[int]:
        return list(await asyncio.gather(*(children.submit(add, {"x": i, "y": i}) for i in range(200))))

    assert asyncio.run(fan_out()) == [2 * i for i in range(200)]
    assert sorted(c for _, _, c in controller.submitted) == sorted(f"a0.{i}" for i in range(200))


def test_a_sync_body_blocking_its_event_loop_still_gets_answers(client: ActionClient) -> None:
    children = Children(client, "a0")

    async def sync_body_on_the_loop() -> int:
        # What a sync task's body does: block the thread of the loop it runs on until the answer comes.
        return children.submit_blocking(add, {"x": 1, "y": 2})  # type: ignore[no-any-return]

    assert asyncio.run(sync_body_on_the_loop()) == 3


def test_calls_from_threads_block_until_answered(client: ActionClient) -> None:
    children = Children(client, "a0")
    answers: dict[int, int] = {}

    def caller(i: int) -> None:
        answers[i] = children.submit(add, {"x": i, "y": 1})

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert answers == {i: i + 1 for i in range(8)}


def test_cancelling_a_call_cancels_the_child_in_the_controller(client: ActionClient, controller: Controller) -> None:
    children = Children(client, "a0")

    async def give_up() -> None:
        call = children.submit(slow, {"seconds": 30.0})
        assert await anyio.to_thread.run_sync(controller.started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(give_up())
    assert controller.cancelled.wait(5)


def test_a_job_that_returns_with_calls_outstanding_cancels_them(client: ActionClient, controller: Controller) -> None:
    children = Children(client, "a0")
    results: list[BaseException] = []

    def waiter() -> None:
        try:
            children.submit_blocking(slow, {"seconds": 30.0})
        except BaseException as e:
            results.append(e)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert controller.started.wait(5)
    children.close()
    thread.join(5)
    assert [type(e) for e in results] == [TaskFailedError]
    assert "has returned" in str(results[0])
    assert controller.cancelled.wait(5)


def test_a_call_the_controller_refuses_fails_naming_the_address_and_status(
    served: Served, client: ActionClient
) -> None:
    served.unregister("r1")
    with pytest.raises(TaskFailedError) as raised:
        Children(client, "a0").submit_blocking(add, {"x": 1, "y": 1})
    assert served.address in str(raised.value)
    assert "UNAUTHENTICATED" in str(raised.value)


def test_calls_after_close_are_refused(client: ActionClient) -> None:
    client.close()
    with pytest.raises(BackendError, match="closed"):
        client.submit(worker_pb2.SubmitChild(call=0, task="x@1"), lambda r: None)


# --- tokens --------------------------------------------------------------------------------------------------------


def test_a_missing_or_unknown_token_is_unauthenticated_and_logged(
    served: Served, controller: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    served.register("r1", controller)
    channel, stub = raw_stub(served.address)
    hello = actions_pb2.HelloRequest(run_id="r1", action_id="a0", attempt=1)
    with channel, caplog.at_level(logging.WARNING, logger="flytelike.remote"):
        assert status_of(lambda: stub.Hello(hello)) == grpc.StatusCode.UNAUTHENTICATED
        wrong = (("authorization", "Bearer not-a-token"),)
        assert status_of(lambda: stub.Hello(hello, metadata=wrong)) == grpc.StatusCode.UNAUTHENTICATED
        submit = actions_pb2.SubmitChildRequest(run_id="r1", action_id="a0", attempt=1)
        assert status_of(lambda: stub.SubmitChild(submit, metadata=wrong)) == grpc.StatusCode.UNAUTHENTICATED
    assert "refused Hello" in caplog.text
    assert "no bearer token" in caplog.text
    assert "an unknown token" in caplog.text
    assert "not-a-token" not in caplog.text
    assert controller.submitted == []


def test_connecting_with_a_wrong_token_raises_controller_unreachable(served: Served, controller: Controller) -> None:
    served.register("r1", controller)
    with pytest.raises(ControllerUnreachableError) as raised:
        served.connect("wrong")
    assert raised.value.address == served.address
    assert raised.value.reason.startswith("UNAUTHENTICATED")


def test_the_token_of_one_run_is_refused_for_another(served: Served) -> None:
    a, b = Controller(), Controller()
    token_a = served.register("run-a", a)
    served.register("run-b", b)
    channel, stub = raw_stub(served.address)
    metadata = (("authorization", f"Bearer {token_a}"),)
    with channel:
        stub.Hello(actions_pb2.HelloRequest(run_id="run-a"), metadata=metadata)
        hello_b = actions_pb2.HelloRequest(run_id="run-b")
        assert status_of(lambda: stub.Hello(hello_b, metadata=metadata)) == grpc.StatusCode.PERMISSION_DENIED
        submit_b = actions_pb2.SubmitChildRequest(run_id="run-b", child=worker_pb2.SubmitChild(task="x@1"))
        assert status_of(lambda: stub.SubmitChild(submit_b, metadata=metadata)) == grpc.StatusCode.PERMISSION_DENIED
        chunk = actions_pb2.LogChunk(run_id="run-b", data=b"x")
        assert status_of(lambda: stub.SendLogs(iter([chunk]), metadata=metadata)) == grpc.StatusCode.PERMISSION_DENIED
        beat = actions_pb2.HeartbeatRequest(run_id="run-b")
        assert status_of(lambda: stub.Heartbeat(beat, metadata=metadata)) == grpc.StatusCode.PERMISSION_DENIED
    assert b.submitted == b.output == b.beats == []


def test_unregistering_a_run_invalidates_its_token(served: Served, controller: Controller) -> None:
    token = served.register("r1", controller)
    served.connect(token).close()
    served.unregister("r1")
    with pytest.raises(ControllerUnreachableError, match="UNAUTHENTICATED"):
        served.connect(token)


def test_registering_again_replaces_the_token(served: Served, controller: Controller) -> None:
    first = served.register("r1", controller)
    second = served.register("r1", controller)
    assert first != second
    served.connect(second).close()
    with pytest.raises(ControllerUnreachableError, match="UNAUTHENTICATED"):
        served.connect(first)


# --- logs and heartbeats -------------------------------------------------------------------------------------------


def test_logs_arrive_complete_and_in_order(client: ActionClient, controller: Controller) -> None:
    pieces = [f"line {i} ".encode() * (i % 7 + 1) for i in range(2000)]
    pieces.append(bytes(range(256)) * 1024)  # larger than a chunk
    for piece in pieces:
        client.write_logs(piece)
    client.close()
    assert b"".join(data for _, _, data in controller.output) == b"".join(pieces)
    assert {(a, n) for a, n, _ in controller.output} == {("a0", 1)}


def test_logs_written_from_many_threads_keep_each_threads_order(client: ActionClient, controller: Controller) -> None:
    def writer(name: str) -> None:
        for i in range(300):
            client.write_logs(f"{name}:{i}\n".encode())

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    lines = b"".join(data for _, _, data in controller.output).decode().splitlines()
    assert len(lines) == 1200
    for n in range(4):
        assert [line for line in lines if line.startswith(f"t{n}:")] == [f"t{n}:{i}" for i in range(300)]


def test_the_server_passes_resent_output_on_once_and_reports_what_was_lost(
    served: Served, controller: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    token = served.register("r1", controller)
    channel, stub = raw_stub(served.address)

    def chunk(offset: int, data: bytes) -> actions_pb2.LogChunk:
        return actions_pb2.LogChunk(run_id="r1", action_id="a0", attempt=1, offset=offset, data=data)

    metadata = (("authorization", f"Bearer {token}"),)
    with channel, caplog.at_level(logging.WARNING, logger="flytelike.remote"):
        first = stub.SendLogs(iter([chunk(0, b"abc"), chunk(1, b"bcd")]), metadata=metadata)
        # A second stream of the same attempt (after a broken one) resends from 2, then skips 3 bytes.
        second = stub.SendLogs(iter([chunk(2, b"cdef"), chunk(9, b"jk")]), metadata=metadata)
    assert (first.received, second.received) == (4, 11)
    assert b"".join(data for _, _, data in controller.output) == b"abcdefjk"
    assert "3 bytes of output of a0 attempt 1 were lost before offset 9" in caplog.text


def test_a_log_stream_is_refused_once_its_run_is_unregistered(served: Served, controller: Controller) -> None:
    token = served.register("r1", controller)
    channel, stub = raw_stub(served.address)
    unregistered = threading.Event()

    def chunks() -> Iterator[actions_pb2.LogChunk]:
        yield actions_pb2.LogChunk(run_id="r1", action_id="a0", attempt=1, offset=0, data=b"before")
        while not controller.output:
            time.sleep(0.01)
        served.unregister("r1")
        unregistered.set()
        yield actions_pb2.LogChunk(run_id="r1", action_id="a0", attempt=1, offset=6, data=b"after")

    metadata = (("authorization", f"Bearer {token}"),)
    with channel:
        assert status_of(lambda: stub.SendLogs(chunks(), metadata=metadata)) == grpc.StatusCode.UNAUTHENTICATED
    assert unregistered.is_set()
    assert [data for _, _, data in controller.output] == [b"before"]


def test_output_the_controller_refuses_is_dropped_with_one_warning(
    served: Served, client: ActionClient, controller: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    client.write_logs(b"kept")
    deadline = time.monotonic() + 5
    while not controller.output and time.monotonic() < deadline:
        time.sleep(0.01)
    served.unregister("r1")
    with caplog.at_level(logging.WARNING, logger="flytelike.remote"):
        for _ in range(5):
            client.write_logs(b"dropped")
            time.sleep(0.05)
        began = time.monotonic()
        client.close()
    assert time.monotonic() - began < 1
    assert [data for _, _, data in controller.output] == [b"kept"]
    assert caplog.text.count("output is dropped from now on") == 1


def test_heartbeats_reach_the_controller(served: Served, controller: Controller) -> None:
    client = served.connect(served.register("r1", controller), heartbeat_every=0.05)
    try:
        assert controller.beat.wait(2)
    finally:
        client.close()
    assert controller.beats[0] == ("a0", 1)
    time.sleep(0.05)  # a beat the server had already received when the client closed
    count = len(controller.beats)
    time.sleep(0.25)
    assert len(controller.beats) == count  # close() stopped them


# --- the server ----------------------------------------------------------------------------------------------------


def test_the_health_service_says_serving_then_not_serving_on_shutdown() -> None:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = ActionServer(grace=0.5)
        with portal.wrap_async_context_manager(server):
            channel = grpc.insecure_channel(server.address)
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SERVICE_NAME):
                answer = health.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            stopping = portal.start_task_soon(server.__aexit__, None, None, None)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            stopping.result(5)
            channel.close()
            # Leaving the wrapped context exits the server a second time, which does nothing.


def test_the_server_reports_the_port_it_bound(served: Served) -> None:
    host, port = served.address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0


@pytest.mark.parametrize("bind", ["localhost", "127.0.0.1:http", ":4170", "::1:4170", "host:70000"])
def test_a_bad_bind_address_is_refused_naming_it(bind: str) -> None:
    with pytest.raises(SpecError, match=r"ActionServer\.bind") as raised:
        ActionServer(bind)
    assert raised.value.value == bind
    assert "host:port" in str(raised.value)


def test_a_port_in_use_is_a_backend_error(served: Served) -> None:
    async def second() -> None:
        async with ActionServer(served.address):
            pass

    with pytest.raises(BackendError, match=re.escape(served.address)):
        asyncio.run(second())


def test_an_empty_run_id_is_refused(served: Served, controller: Controller) -> None:
    with pytest.raises(SpecError, match="run_id"):
        served.register("", controller)


# --- connecting ----------------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connecting_to_a_closed_port_fails_fast_naming_the_address() -> None:
    address = f"127.0.0.1:{closed_port()}"
    began = time.monotonic()
    with pytest.raises(ControllerUnreachableError) as raised:
        ActionClient.connect(address, token="t", run_id="r", action_id="a0", attempt=1, timeout=1)
    assert time.monotonic() - began < 1.5
    assert raised.value.address == address
    assert raised.value.reason.startswith("UNAVAILABLE")
    assert f"cannot reach the controller at {address} (UNAVAILABLE" in str(raised.value)
    assert "[controller] address" in str(raised.value)
    assert "FLYTELIKE_CONTROLLER__ADDRESS" in str(raised.value)
    assert isinstance(raised.value, BackendError)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [({"timeout": 0}, "ActionClient.timeout"), ({"heartbeat_every": -1}, "ActionClient.heartbeat_every")],
)
def test_bad_client_settings_are_refused_naming_them(kwargs: dict[str, float], field_name: str) -> None:
    with pytest.raises(SpecError, match=field_name):
        ActionClient.connect("127.0.0.1:1", token="t", run_id="r", action_id="a", attempt=1, **kwargs)


def test_a_bad_controller_address_is_refused_naming_it() -> None:
    with pytest.raises(SpecError, match="controller address") as raised:
        ActionClient.connect("no-port", token="t", run_id="r", action_id="a", attempt=1)
    assert raised.value.value == "no-port"


def test_the_unreachable_error_survives_pickling() -> None:
    error = ControllerUnreachableError(address="10.0.0.5:4170", reason="UNAVAILABLE: down")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.address, copy.reason, str(copy)) == (error.address, error.reason, str(error))


# --- log chunks and offsets ----------------------------------------------------------------------------------------

Op = tuple[str, bytes, int]
ops = st.lists(
    st.one_of(
        st.binary(max_size=40).map(lambda b: ("write", b, 0)),
        st.integers(0, 6).map(lambda k: ("break", b"", k)),
        st.just(("end", b"", 0)),
    ),
    max_size=40,
)


@given(ops=ops, chunk_size=st.integers(1, 16), keep=st.integers(0, 64))
def test_resent_output_is_passed_on_once_at_its_offset(ops: list[Op], chunk_size: int, keep: int) -> None:
    outbox, cursor = LogOutbox(chunk_size=chunk_size, keep=keep), LogCursor()
    truth = bytearray()
    seen = bytearray()  # what the server passed on, with lost bytes as gaps
    lost = 0
    on_stream: list[tuple[int, bytes]] = []  # taken since the stream began

    def deliver(chunks: list[tuple[int, bytes]]) -> None:
        nonlocal lost
        for offset, data in chunks:
            assert len(data) <= chunk_size
            fresh, gap = cursor.accept(offset, data)
            lost += gap
            seen.extend(b"\0" * gap + fresh)
            assert bytes(seen[len(seen) - len(fresh) :]) == bytes(truth[len(seen) - len(fresh) : len(seen)])

    for kind, data, k in ops:
        if kind == "write":
            outbox.write(data)
            truth += data
        elif kind == "break":  # the server got the first k chunks of this stream, the rest went with it
            on_stream += outbox.take()
            deliver(on_stream[:k])
            outbox.rewind()
            on_stream = []
        else:
            deliver(on_stream + outbox.take())
            outbox.confirm()
            on_stream = []
    deliver(on_stream + outbox.take())
    # Output lost at the very end leaves no later chunk to reveal the gap: the server has a prefix of it, then.
    assert cursor.received == len(seen) <= len(truth)
    assert outbox.written == len(truth)
    if keep >= len(truth):
        assert lost == 0
        assert seen == truth


@pytest.mark.parametrize("module", [_address, _client, _logs, _server], ids=lambda m: m.__name__)
def test_the_modules_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
