"""The task's side of the ActionService: calls, logs and heartbeats of one attempt running outside the controller.

:class:`ActionClient` is a :class:`~flytelike._worker._children.ChildChannel`, so the job's ``Children`` sends its
calls through it as it does through the warm worker's pipe. Its gRPC channel lives on an event loop of its own, in
a thread of its own: a sync task's body blocks the thread of the loop it was started on (it waits there for its
calls' answers), so no RPC of the attempt may need that loop. What the task's threads call
(:meth:`~ActionClient.submit`, :meth:`~ActionClient.cancel`, :meth:`~ActionClient.abandon`,
:meth:`~ActionClient.write_logs`) hands work to the client's loop and returns at once; answers are delivered on the
client's thread.

Every call, the heartbeats and the log sender run in one task group on that loop, which :meth:`~ActionClient.close`
ends: nothing the client started outlives it.

Example:
    >>> from flytelike.errors import ControllerUnreachableError
    >>> try:
    ...     ActionClient.connect("127.0.0.1:1", token="t", run_id="r", action_id="a0", attempt=1, timeout=1)
    ... except ControllerUnreachableError as e:
    ...     print(e.address, e.reason.split(":")[0])
    127.0.0.1:1 UNAVAILABLE
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import grpc
import grpc.aio

from flytelike._proto.remote.v1 import actions_pb2, actions_pb2_grpc
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._remote._address import split_address
from flytelike._remote._auth import bearer
from flytelike._remote._logs import LogOutbox
from flytelike._remote._results import lost
from flytelike._remote._rpc import response as _response
from flytelike._remote._rpc import status as _status
from flytelike.errors import BackendError, ControllerUnreachableError, SpecError

if TYPE_CHECKING:
    from flytelike._worker._children import ChildChannel

__all__ = ["ActionClient"]

Deliver = Callable[[worker_pb2.ChildResult], None]
log = logging.getLogger("flytelike.remote")

RECONNECT_SECONDS = 0.5
"""How long the log sender waits after a broken stream before it opens the next one."""
_REFUSALS = frozenset(
    {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}
)
"""Answers that a stream sent again would get again."""
RESEND_SECONDS = 1.0
"""How long a call waits after its controller went away before it is sent again (then on the channel's own
reconnection)."""
_AWAY = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
"""How a call ends when its controller goes away: unreachable, or cancelled by a server stopping (this client's own
cancellation of a call is no AioRpcError)."""
JOIN_SLACK_SECONDS = 2.0
"""How much longer than its flush timeout close() waits for the client's thread to end."""


class ActionClient:
    """One attempt's connection to its controller; made by :meth:`connect`, ended by :meth:`close`.

    Attributes:
        address: the controller's ``host:port``.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str,
        run_id: str,
        action_id: str,
        attempt: int,
        heartbeat_every: float,
        reconnect_timeout: float = 600.0,
        tls_ca: bytes | None = None,
    ) -> None:
        self.address = address
        self._tls_ca = tls_ca
        self._reconnect_timeout = reconnect_timeout
        self._metadata = bearer(token)
        self._run_id = run_id
        self._action_id = action_id
        self._attempt = attempt
        self._heartbeat_every = heartbeat_every
        self._lock = threading.Lock()
        self._waiting: dict[int, Deliver] = {}  # calls sent and not answered, cancelled or abandoned
        self._closed = False
        self._outbox = LogOutbox()
        self._up = threading.Event()  # the client's loop is serving, or failed to (then _failure says why)
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._close_timeout = 0.0
        # Used on the client's loop only.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stub: actions_pb2_grpc.ActionServiceAsyncStub | None = None
        self._channel: grpc.aio.Channel | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._scopes: dict[int, anyio.CancelScope] = {}
        self._wake: anyio.Event | None = None  # output is pending, or close() was called
        self._stopping: anyio.Event | None = None
        self._logs_sent: anyio.Event | None = None

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        token: str,
        run_id: str,
        action_id: str,
        attempt: int,
        timeout: float = 10.0,
        heartbeat_every: float = 5.0,
        reconnect_timeout: float = 600.0,
        startup_wait: float = 0.0,
        tls_ca: bytes | None = None,
    ) -> ActionClient:
        """Connect to the controller at ``address`` and say Hello, blocking until it answered.

        Heartbeats start once it has, every ``heartbeat_every`` seconds; logs are sent as they are written. A call
        whose controller goes away (UNAVAILABLE: a restarting server) is sent again once it is back, for up to
        ``reconnect_timeout`` seconds: the controller knows a child by its id, so a call sent twice starts it once.
        A controller that does not answer Hello fails the connection at once, unless ``startup_wait`` says how
        long to keep trying (a controller that restarts, ``flytelike serve``, tells its tasks to wait). With
        ``tls_ca`` (PEM), the connection is TLS and the controller's certificate is checked against it.

        Raises:
            ControllerUnreachableError: the controller did not answer within ``timeout`` seconds, or refused the
                token.
        """
        split_address(address, field="controller address")
        if not startup_wait >= 0:
            raise SpecError("ActionClient.startup_wait", startup_wait, "must not be negative", accepted="0, 600")
        for field, value in (
            ("timeout", timeout),
            ("heartbeat_every", heartbeat_every),
            ("reconnect_timeout", reconnect_timeout),
        ):
            if not value > 0:
                raise SpecError(f"ActionClient.{field}", value, "must be a positive number of seconds", accepted="5.0")
        if not 0 <= attempt < 2**32:
            raise SpecError("ActionClient.attempt", attempt, "must fit an unsigned 32-bit number", accepted="1")
        client = cls(
            address,
            token=token,
            run_id=run_id,
            action_id=action_id,
            attempt=attempt,
            heartbeat_every=heartbeat_every,
            reconnect_timeout=reconnect_timeout,
            tls_ca=tls_ca,
        )
        client._thread = threading.Thread(
            target=anyio.run, args=(client._main, timeout, startup_wait), name="flytelike-controller", daemon=True
        )
        client._thread.start()
        if not client._up.wait(timeout + startup_wait + JOIN_SLACK_SECONDS):
            # Hello has a deadline, so this is a loop that never got to send it.
            client.close(timeout=0)
            raise ControllerUnreachableError(address=address, reason=f"no answer within {timeout} s")
        if client._failure is not None:
            client._thread.join(JOIN_SLACK_SECONDS)
            with client._lock:
                client._closed = True
            raise client._failure
        return client

    # --- ChildChannel (any thread) --------------------------------------------------------------------------------

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        """Run ``message`` as a child action; ``deliver`` gets its ChildResult, once, on the client's thread."""
        with self._lock:
            if self._closed:
                raise BackendError(f"task {message.task} cannot be called: the connection to the controller is closed")
            # Handed over under the lock: the loop runs callbacks in the order they came, so RPCs start in call order.
            if not self._soon(self._start_call, message):
                raise BackendError(f"task {message.task} cannot be called: the connection to {self.address} failed")
            self._waiting[message.call] = deliver

    def cancel(self, call: int) -> None:
        """The task stopped waiting for ``call``: cancel its RPC, and so the child; no result is delivered."""
        with self._lock:
            if self._waiting.pop(call, None) is None or self._closed:
                return
            self._soon(self._cancel_calls, (call,))

    def abandon(self, reason: str) -> None:
        """Deliver an error to every call still unanswered and cancel their RPCs.

        The task returned without waiting for them; cancelling their RPCs cancels the children in the controller,
        as the controller itself does for the calls a warm worker's job left outstanding.
        """
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            if waiting and not self._closed:
                self._soon(self._cancel_calls, tuple(waiting))
        for call, deliver in waiting.items():
            _deliver(deliver, lost(call, reason))

    # --- logs (any thread) ----------------------------------------------------------------------------------------

    def write_logs(self, data: bytes) -> None:
        """Queue output of the task for the controller; never waits. Sent in order, each byte once."""
        if not self._outbox.write(data):
            return  # the sender has output pending already, and a wake-up on its way or no need of one
        with self._lock:
            if not self._closed:
                self._soon(self._wake_sender)

    # --- closing --------------------------------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Send the output still queued (for at most ``timeout`` seconds), stop heartbeats, close the channel and
        end the client's thread. Calls still unanswered get an error. Closing again does nothing."""
        with self._lock:
            if self._closed:
                return
            waiting, self._waiting = self._waiting, {}
            self._closed = True
            self._close_timeout = max(0.0, timeout)
            self._soon(self._stop)
        for call, deliver in waiting.items():
            _deliver(deliver, lost(call, "the connection to the controller was closed"))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._close_timeout + JOIN_SLACK_SECONDS)
            if thread.is_alive():
                log.warning("the connection to the controller at %s did not close in time", self.address)

    def __enter__(self) -> ActionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _soon(self, callback: Callable[..., object], *args: Any) -> bool:
        """Run ``callback`` on the client's loop; False when the loop is not running (any more)."""
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # closed: the loop ended on an error, and _lost() is closing the client
            return False
        return True

    # --- on the client's loop -------------------------------------------------------------------------------------

    async def _main(self, timeout: float, startup_wait: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = anyio.Event()
        stopping = self._stopping = anyio.Event()
        logs_sent = self._logs_sent = anyio.Event()
        try:
            channel_of = (
                grpc.aio.insecure_channel(self.address)
                if self._tls_ca is None
                else grpc.aio.secure_channel(self.address, grpc.ssl_channel_credentials(root_certificates=self._tls_ca))
            )
            async with channel_of as channel:
                self._channel = channel
                self._stub = actions_pb2_grpc.ActionServiceStub(channel)
                await self._hello(timeout, startup_wait)
                async with anyio.create_task_group() as group:
                    self._group = group
                    heartbeats = anyio.CancelScope()
                    group.start_soon(self._heartbeats, heartbeats)
                    group.start_soon(self._send_logs)
                    self._up.set()
                    await stopping.wait()
                    heartbeats.cancel()
                    with anyio.move_on_after(self._close_timeout):
                        await logs_sent.wait()
                    group.cancel_scope.cancel()
        except Exception as e:
            if not self._up.is_set():
                self._failure = e  # connect() raises it
            else:
                self._lost(e)
        finally:
            self._up.set()

    def _lost(self, error: Exception) -> None:
        """The client's loop ended on an error: nothing sent through it will be answered."""
        log.error("the connection to the controller at %s failed", self.address, exc_info=error)
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            self._closed = True
        for call, deliver in waiting.items():
            _deliver(deliver, lost(call, f"the connection to the controller at {self.address} failed: {error!r}"))

    async def _hello(self, timeout: float, startup_wait: float) -> None:
        request = actions_pb2.HelloRequest(run_id=self._run_id, action_id=self._action_id, attempt=self._attempt)
        give_up = anyio.current_time() + startup_wait
        while True:
            try:
                # No wait_for_ready: a refused connection fails at once, with its reason, rather than at the
                # deadline (and is tried again while the controller may be restarting).
                await _response(self._rpc().Hello(request, metadata=self._metadata, timeout=timeout))
                return
            except grpc.aio.AioRpcError as e:
                left = give_up - anyio.current_time()
                if e.code() != grpc.StatusCode.UNAVAILABLE or left <= 0:
                    raise ControllerUnreachableError(address=self.address, reason=_status(e)) from None
                log.warning(
                    "the controller at %s does not answer (%s); trying for %.0f s", self.address, _status(e), left
                )
                await anyio.sleep(min(RESEND_SECONDS, left))

    def _rpc(self) -> actions_pb2_grpc.ActionServiceAsyncStub:
        assert self._stub is not None, "the channel is opened before anything is sent"
        return self._stub

    def _start_call(self, message: worker_pb2.SubmitChild) -> None:
        assert self._group is not None
        # Made here rather than in the task, so that a cancel() arriving before the task first runs finds it.
        scope = self._scopes[message.call] = anyio.CancelScope()
        self._group.start_soon(self._submit, message, scope)

    def _cancel_calls(self, calls: tuple[int, ...]) -> None:
        for call in calls:
            scope = self._scopes.get(call)
            if scope is not None:
                scope.cancel()

    async def _submit(self, message: worker_pb2.SubmitChild, scope: anyio.CancelScope) -> None:
        request = actions_pb2.SubmitChildRequest(
            run_id=self._run_id, action_id=self._action_id, attempt=self._attempt, child=message
        )
        try:
            with scope:
                result = await self._call_child(request, message)
                with self._lock:
                    deliver = self._waiting.pop(message.call, None)
                if deliver is not None:  # None: cancelled or abandoned meanwhile; nobody waits for the answer
                    _deliver(deliver, result)
        finally:
            self._scopes.pop(message.call, None)

    async def _call_child(
        self, request: actions_pb2.SubmitChildRequest, message: worker_pb2.SubmitChild
    ) -> worker_pb2.ChildResult:
        """SubmitChild until answered; sent again while the controller is away, for up to the reconnect timeout."""
        give_up = anyio.current_time() + self._reconnect_timeout
        warned = False
        while True:
            try:
                return await _response(self._rpc().SubmitChild(request, metadata=self._metadata))
            except grpc.aio.AioRpcError as e:
                left = give_up - anyio.current_time()
                if e.code() not in _AWAY or left <= 0:
                    why = f"the controller at {self.address} failed the call ({_status(e)})"
                    return lost(message.call, f"task {message.task}: {why}")
                if not warned:
                    log.warning(
                        "the controller at %s went away (%s); call %d is sent again once it is back (for %.0f s)",
                        self.address,
                        _status(e),
                        message.call,
                        left,
                    )
                    warned = True
                await anyio.sleep(RESEND_SECONDS)
                with anyio.move_on_after(max(left - RESEND_SECONDS, 0.0)):
                    assert self._channel is not None
                    await self._channel.channel_ready()

    async def _heartbeats(self, scope: anyio.CancelScope) -> None:
        request = actions_pb2.HeartbeatRequest(run_id=self._run_id, action_id=self._action_id, attempt=self._attempt)
        failing = False
        with scope:
            while True:
                await anyio.sleep(self._heartbeat_every)
                try:
                    beat = self._rpc().Heartbeat(request, metadata=self._metadata, timeout=self._heartbeat_every)
                    await _response(beat)
                except grpc.aio.AioRpcError as e:
                    if not failing:  # once per outage, not once per beat
                        log.warning("heartbeat to the controller at %s failed: %s", self.address, _status(e))
                    failing = True
                else:
                    failing = False

    def _wake_sender(self) -> None:
        assert self._wake is not None
        self._wake.set()

    def _stop(self) -> None:
        assert self._stopping is not None
        self._stopping.set()
        self._wake_sender()  # a sender waiting for output must flush and end its stream

    async def _sleep_until_woken(self) -> None:
        assert self._wake is not None
        await self._wake.wait()
        self._wake = anyio.Event()

    async def _send_logs(self) -> None:
        """Keep a SendLogs stream open while there is output, and open another when one breaks.

        A controller that refuses the stream (the run's token is no longer valid) will refuse the next one too: from
        then on output is dropped, with one warning, rather than retried until the attempt ends.
        """
        assert self._stopping is not None
        assert self._logs_sent is not None
        refused = failing = False
        while True:
            if refused:
                self._outbox.take()
                self._outbox.confirm()
            if not self._outbox.pending:
                if self._stopping.is_set():
                    self._logs_sent.set()
                    return
                await self._sleep_until_woken()  # by new output, or by close()
                continue
            try:
                received = await self._stream_logs()
            except asyncio.InvalidStateError:
                self._outbox.rewind()
            except grpc.aio.AioRpcError as e:
                refused = e.code() in _REFUSALS
                if not failing or refused:  # once per outage, not once per try
                    what = "refused; output is dropped from now on" if refused else "broke"
                    log.warning("the output stream to the controller at %s %s: %s", self.address, what, _status(e))
                failing = True
                self._outbox.rewind()
                if not refused:
                    await anyio.sleep(RECONNECT_SECONDS)
            else:
                failing = False
                self._outbox.confirm()
                log.debug("the controller at %s has %d bytes of output", self.address, received)

    async def _stream_logs(self) -> int:
        """Write output on one stream as it comes, until close() finds nothing more to send; the bytes received."""
        assert self._stopping is not None
        stream = self._rpc().SendLogs(metadata=self._metadata)
        try:
            while True:
                for offset, data in self._outbox.take():
                    chunk = actions_pb2.LogChunk(
                        run_id=self._run_id, action_id=self._action_id, attempt=self._attempt, data=data, offset=offset
                    )
                    try:
                        await stream.write(chunk)
                    except asyncio.InvalidStateError:  # the stream has ended: how, its own outcome says
                        await stream  # raises the AioRpcError it ended with
                        raise  # it ended well, yet early: what was not taken goes on the next stream
                if self._stopping.is_set() and not self._outbox.pending:
                    await stream.done_writing()
                    response = await _response(stream)
                    return response.received
                await self._sleep_until_woken()
        finally:
            stream.cancel()  # does nothing once the stream has ended; ends one left midway (close() timed out)


def _deliver(deliver: Deliver, result: worker_pb2.ChildResult) -> None:
    # A caller's callback that raises must not end the client's task group (and every other call with it).
    try:
        deliver(result)
    except Exception:
        log.exception("delivering the result of call %d failed", result.call)


if TYPE_CHECKING:

    def _a_child_channel(client: ActionClient) -> ChildChannel:
        return client
