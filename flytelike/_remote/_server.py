"""The controller's ActionService on grpc.aio, with the standard gRPC health service beside it.

One server serves every run of the controller: :meth:`ActionServer.register` gives a run a token and the
:class:`~flytelike._remote._calls.RunCalls` that serves it. Each call must present a token: none, or one the server
does not know (never issued, or its run unregistered), is ``UNAUTHENTICATED``; a token of one run for a request
naming another is ``PERMISSION_DENIED``. Both are logged on the ``flytelike.remote`` logger, naming the peer and
the method (never the token).

Example:
    >>> import asyncio
    >>> async def main() -> str:
    ...     async with ActionServer() as server:
    ...         return server.address.split(":")[0]
    >>> asyncio.run(main())
    '127.0.0.1'
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flytelike._proto.remote.v1 import actions_pb2, actions_pb2_grpc
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._remote._address import split_address
from flytelike._remote._auth import Grant, Tokens, presented_token
from flytelike._remote._calls import RunCalls
from flytelike._remote._logs import LogCursor
from flytelike._remote._results import system_error
from flytelike.errors import BackendError, SpecError

__all__ = ["SERVICE_NAME", "ActionServer"]

SERVICE_NAME = actions_pb2.DESCRIPTOR.services_by_name["ActionService"].full_name
GRACE_SECONDS = 1.0
"""How long calls in flight may take to finish when the server stops, before they are cancelled."""

log = logging.getLogger("flytelike.remote")

Context = grpc.aio.ServicerContext[Any, Any]


# gRPC sets SO_REUSEPORT by default: a second controller on the same port would then take half the calls instead of
# failing to start. And gRPC cancels a call that waits longer than 30 s (its default) for the server to take it: a
# task fanning out to hundreds of children on a busy controller had some of its calls cancelled that way, so a call
# waits for its turn as long as it takes.
SERVER_OPTIONS = [("grpc.so_reuseport", 0), ("grpc.server_max_unrequested_time_in_server", 24 * 3600)]


class ActionServer:
    """The ActionService of one controller, listening on ``bind`` while the server is entered.

    Args:
        bind: ``host:port`` to listen on; port 0 picks a free port (see :attr:`address`).
        grace: seconds calls in flight get to finish when the server stops.
        token_for: makes a run's token from its id, instead of a fresh random one per registration: a controller
            that restarts (``flytelike serve``) must accept the tokens its tasks were given before.

    Example:
        >>> import asyncio
        >>> class Calls:  # the controller's handler of one run (see RunCalls)
        ...     async def submit(self, action_id, attempt, child): ...
        ...     def logs(self, action_id, attempt, data): ...
        ...     def heartbeat(self, action_id, attempt): ...
        >>> async def main() -> bool:
        ...     async with ActionServer("127.0.0.1:0") as server:
        ...         token = server.register("r-1", Calls())  # handed to the run's tasks with the address
        ...         server.unregister("r-1")  # the run ended: its token is refused from now on
        ...         return len(token) > 40
        >>> asyncio.run(main())
        True
    """

    def __init__(
        self,
        bind: str = "127.0.0.1:0",
        *,
        grace: float = GRACE_SECONDS,
        token_for: Callable[[str], str] | None = None,
    ) -> None:
        self._host, _ = split_address(bind, field="ActionServer.bind")
        self._token_for = token_for
        self._attached = False
        self.tls_ca: bytes | None = None  # set when the server it is attached to speaks TLS
        if grace < 0:
            raise SpecError("ActionServer.grace", grace, "must not be negative", accepted="seconds, e.g. 1.0")
        self._bind = bind
        self._grace = grace
        self._tokens: Tokens[RunCalls] = Tokens()
        self._cursors: dict[tuple[str, str, int], LogCursor] = {}
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._port = 0

    @property
    def address(self) -> str:
        """The ``host:port`` the server listens on (the port it got when ``bind`` asked for port 0)."""
        if self._server is None:
            raise BackendError("ActionServer.address is only known while the server is entered (async with)")
        return f"{self._host}:{self._port}"

    def register(self, run_id: str, calls: RunCalls) -> str:
        """Serve ``run_id`` with ``calls``; returns the token its tasks present (a fresh one on every call)."""
        if not run_id:
            raise SpecError("run_id", run_id, "must not be empty", accepted="the run's id, e.g. 'r-3f2a'")
        return self._tokens.issue(run_id, calls, None if self._token_for is None else self._token_for(run_id))

    def unregister(self, run_id: str) -> None:
        """Stop serving ``run_id``: its token is refused from now on. Unknown runs are ignored."""
        self._tokens.revoke(run_id)
        for key in [key for key in self._cursors if key[0] == run_id]:
            del self._cursors[key]

    def attach(self, server: grpc.aio.Server, address: str, *, tls_ca: bytes | None = None) -> None:
        """Serve on ``server`` (another service's, e.g. ``flytelike serve``'s, which starts and stops it) rather
        than on a server of its own; tasks are told ``address``, and ``tls_ca`` when that server speaks TLS (the
        certificate its own is checked against). Entering and leaving then do nothing."""
        actions_pb2_grpc.add_ActionServiceServicer_to_server(_Servicer(self), server)
        self.tls_ca = tls_ca
        self._host, port = split_address(address, field="ActionServer.address")
        self._server, self._port, self._attached = server, int(port), True

    async def __aenter__(self) -> ActionServer:
        if self._attached:
            return self
        server = grpc.aio.server(options=SERVER_OPTIONS)
        actions_pb2_grpc.add_ActionServiceServicer_to_server(_Servicer(self), server)
        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        try:
            port = server.add_insecure_port(self._bind)
        except RuntimeError as e:
            raise BackendError(f"the controller cannot listen on {self._bind}: {e}") from None
        if port == 0:
            raise BackendError(f"the controller cannot listen on {self._bind}: the address is in use or not local")
        await server.start()
        for service in ("", SERVICE_NAME):
            await checker.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server, self._health, self._port = server, checker, port
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, checker = self._server, self._health
        if server is None or checker is None or self._attached:
            return
        # Health watchers hear NOT_SERVING before the server stops taking calls and lets those in flight finish.
        await checker.enter_graceful_shutdown()
        try:
            await server.stop(self._grace)
        finally:
            self._server = self._health = None

    # --- what the servicer asks -----------------------------------------------------------------------------------

    async def grant(self, context: Context, method: str) -> Grant[RunCalls]:
        """What the call's token grants; aborts the call with UNAUTHENTICATED when it grants nothing."""
        token = presented_token(context.invocation_metadata())
        grant = self._tokens.grant(token) if token is not None else None
        if grant is None:
            why = "no bearer token" if token is None else "an unknown token"
            log.warning("refused %s from %s: %s", method, context.peer(), why)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{method}: {why} (authorization: Bearer <token>)")
        return grant

    async def check_run(self, context: Context, grant: Grant[RunCalls], run_id: str, method: str) -> None:
        """Abort the call with PERMISSION_DENIED when the request names a run its token does not grant."""
        if grant.run_id != run_id:
            log.warning(
                "refused %s from %s: a token of run %r used for run %r", method, context.peer(), grant.run_id, run_id
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{method}: the token presented is not the token of run {run_id!r}"
            )

    async def authorize(self, context: Context, run_id: str, method: str) -> RunCalls:
        """The handler of ``run_id`` if the call's token is that run's; aborts the call otherwise."""
        grant = await self.grant(context, method)
        await self.check_run(context, grant, run_id, method)
        return grant.handler

    def cursor(self, run_id: str, action_id: str, attempt: int) -> LogCursor:
        key = (run_id, action_id, attempt)
        found = self._cursors.get(key)
        if found is None:
            found = self._cursors[key] = LogCursor()
        return found


class _Servicer(actions_pb2_grpc.ActionServiceServicer):
    def __init__(self, server: ActionServer) -> None:
        self._server = server

    async def Hello(  # noqa: N802 (the gRPC method's name)
        self, request: actions_pb2.HelloRequest, context: Context
    ) -> actions_pb2.HelloResponse:
        await self._server.authorize(context, request.run_id, "Hello")
        return actions_pb2.HelloResponse()

    async def SubmitChild(  # noqa: N802 (the gRPC method's name)
        self, request: actions_pb2.SubmitChildRequest, context: Context
    ) -> worker_pb2.ChildResult:
        calls = await self._server.authorize(context, request.run_id, "SubmitChild")
        child = request.child
        try:
            # A cancelled call cancels this coroutine, and so the child: CancelledError is not an Exception.
            return await calls.submit(request.action_id, request.attempt, child)
        except Exception as e:
            log.exception("SubmitChild of %s for %s failed in the controller", child.child_action_id, request.action_id)
            return system_error(child.call, e)

    async def SendLogs(  # noqa: N802 (the gRPC method's name)
        self, request_iterator: AsyncIterator[actions_pb2.LogChunk], context: Context
    ) -> actions_pb2.SendLogsResponse:
        # The token is checked before the first chunk: a refused stream is refused even if it never sends one.
        await self._server.grant(context, "SendLogs")
        received = 0
        async for chunk in request_iterator:
            # Checked again for every chunk: a run unregistered while its stream is open is refused from then on.
            grant = await self._server.grant(context, "SendLogs")
            await self._server.check_run(context, grant, chunk.run_id, "SendLogs")
            cursor = self._server.cursor(chunk.run_id, chunk.action_id, chunk.attempt)
            fresh, gap = cursor.accept(chunk.offset, chunk.data)
            if gap:
                log.warning(
                    "%d bytes of output of %s attempt %d were lost before offset %d",
                    gap,
                    chunk.action_id,
                    chunk.attempt,
                    chunk.offset,
                )
            if fresh:
                grant.handler.logs(chunk.action_id, chunk.attempt, fresh)
            received = cursor.received
        return actions_pb2.SendLogsResponse(received=received)

    async def Heartbeat(  # noqa: N802 (the gRPC method's name)
        self, request: actions_pb2.HeartbeatRequest, context: Context
    ) -> actions_pb2.HeartbeatResponse:
        calls = await self._server.authorize(context, request.run_id, "Heartbeat")
        calls.heartbeat(request.action_id, request.attempt)
        return actions_pb2.HeartbeatResponse()
