"""``flytelike serve``'s server: RunService and BlobService on grpc.aio, with health and reflection beside them.

:class:`ControlPlane` composes the records, the blob store, the hub, the run source and the services, and is an
async context manager: entering applies migrations, starts the writer, takes over what a previous server process
left, starts the abort reconciler and the gRPC server; leaving stops taking calls, lets those in flight finish for
a moment, stops executing the runs without ending them (their pods and jobs go on, and they stay running in the
records for the next start to take over) and closes everything.

The tasks of the runs call back on the same port (the ActionService is served beside RunService), with run tokens
derived from the server's token: both outlive a restart, so a task started by the previous process keeps working.

What a restart does: every run the previous process left queued or running is given back to the run source with
where each of its actions stood by the records (:func:`~flytelike._remote._resume.resume_points`). Every attempt
was recorded before it was started (its intent), and is named after its run, action and number, so the backends
find what exists (pods by one list of the server's label, Batch jobs by name) and read outcomes already in the store
instead of starting anything twice; tasks that called back retry until the server is back. Abort requests left
pending are carried out again.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import os
import secrets
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from flytelike._backends import BackendInput
from flytelike._config import Settings, pem_setting
from flytelike._executor import Backend
from flytelike._proto.remote.v1 import blobs_pb2, blobs_pb2_grpc, runs_pb2, runs_pb2_grpc
from flytelike._remote._access import Access
from flytelike._remote._address import split_address
from flytelike._remote._blob_service import BlobServicer
from flytelike._remote._hub import Hub
from flytelike._remote._resume import resume_points
from flytelike._remote._run_service import RunServicer
from flytelike._remote._server import SERVER_OPTIONS, ActionServer
from flytelike._remote._source import RunSource
from flytelike._remote._state import ServerState, database_url, safe_url
from flytelike._storage import BlobStore, open_store
from flytelike.errors import BackendError, ConfigError

__all__ = ["BLOB_SERVICE", "RUN_SERVICE", "ControlPlane", "backend_factories", "serve_token"]

log = logging.getLogger("flytelike.serve")

RUN_SERVICE = runs_pb2.DESCRIPTOR.services_by_name["RunService"].full_name
BLOB_SERVICE = blobs_pb2.DESCRIPTOR.services_by_name["BlobService"].full_name
GRACE_SECONDS = 2.0
LOST = "the server restarted while the run was going, and its run source cannot take runs over"


def serve_token(settings: Settings) -> str:
    """The server's token: ``[serve] token``, else the content of ``token_file``, else the one kept in (and, the
    first time, written to) ``$FLYTELIKE_HOME/serve.token``, readable by its owner only."""
    serve = settings.serve
    if serve.token:
        return serve.token
    if serve.token_file:
        try:
            token = Path(serve.token_file).expanduser().read_text().strip()
        except OSError as e:
            raise ConfigError("serve.token_file", serve.token_file, f"cannot be read ({e.strerror})") from None
        if not token:
            raise ConfigError("serve.token_file", serve.token_file, "is empty", accepted="a file holding the token")
        return token
    path = settings.home / "serve.token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server of this home made it just now
            return path.read_text().strip()
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        log.info("made a token for this server in %s", path)
    return path.read_text().strip()


def action_token(server_token: str, run_id: str) -> str:
    """The token the run's tasks call back with: derived from the server's, so it outlives a restart."""
    return hmac.new(server_token.encode(), f"action-token:{run_id}".encode(), hashlib.sha256).hexdigest()


def executor_name(database: str) -> str:
    """The label value of what this server starts (pods): one per database, so a restarted server (same records)
    finds what the one before started, and two servers with their own records never see each other's."""
    return "serve-" + hashlib.sha256(safe_url(database).encode()).hexdigest()[:12]


def backend_factories(entries: tuple[str, ...]) -> tuple[str, dict[str, Callable[[BackendInput], Backend]]]:
    """``[serve] backends`` as (the first backend's name, the factories of those given as ``NAME=module:attr``).

    Built-in names are left to the runtime's loader (and so stay lazy).
    """
    factories: dict[str, Callable[[BackendInput], Backend]] = {}
    names: list[str] = []
    for entry in entries:
        name, sep, target = entry.partition("=")
        names.append(name.strip())
        if not sep:
            continue
        module, _, attr = target.strip().partition(":")
        accepted = "kubernetes, batch, or NAME=module:factory"
        try:
            value: Any = importlib.import_module(module)
            for part in attr.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError("serve.backends", entry, f"cannot be loaded ({e})", accepted=accepted) from None
        if not callable(value):
            raise ConfigError("serve.backends", entry, "is not callable", accepted=accepted)
        factories[name.strip()] = value
    return names[0], factories


class ControlPlane:
    """The control plane's server, listening while entered.

    Args:
        settings: the server's settings (``[serve]``, ``[store]`` and the backends' sections).
        source: what runs the runs; default: a :class:`~flytelike._remote._runtime_source.RuntimeRunSource` on the
            backends ``[serve] backends`` names.
        bind: ``HOST:PORT`` instead of ``[serve] bind`` (port 0: a free one, see :attr:`address`).
        token: the server's token instead of the configured one.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source: RunSource | None = None,
        bind: str | None = None,
        token: str | None = None,
    ) -> None:
        self.settings = settings
        self._bind = bind or settings.serve.bind
        self._host, _ = split_address(self._bind, field="serve.bind")
        self._given_token = token
        self._token = ""
        self._source = source
        self._stack: AsyncExitStack | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._port = 0
        self._started = False
        self._aborts = anyio.Event()
        self._hub: Hub | None = None
        self.state: ServerState | None = None
        self.blobs: BlobServicer | None = None
        self.controller: ActionServer | None = None  # the ActionService its runs' tasks call back on

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        if self._server is None:
            raise BackendError("ControlPlane.address is only known while the server is entered (async with)")
        return f"{self._host}:{self._port}"

    @property
    def token(self) -> str:
        """The server's token (known once entered)."""
        return self._token

    async def settled(self) -> None:
        """Wait until every report the run source made so far is recorded."""
        if self._hub is not None:
            await self._hub.settled()

    async def __aenter__(self) -> ControlPlane:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._enter(stack)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        log.info("serving runs on %s (database: %s)", self.address, self.state.dialect if self.state else "")
        return self

    async def _enter(self, stack: AsyncExitStack) -> None:
        settings = self.settings
        # Files are read (and the token file written) off the event loop.
        given = self._given_token
        self._token = given if given else await anyio.to_thread.run_sync(serve_token, settings)
        tls = await anyio.to_thread.run_sync(self._credentials)
        url = database_url(settings.serve.database, home=settings.home)
        state = await stack.enter_async_context(ServerState(url))
        self.state = state
        store: BlobStore = await stack.enter_async_context(
            open_store(settings.store.url, endpoint_url=settings.store.endpoint_url)
        )
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        hub = self._hub = Hub(state)
        await tg.start(hub.write_forever)
        stack.callback(hub.close)
        # The port is taken before the runs are: tasks are told the address, and a restarted server takes its runs
        # over before it answers anyone (a task calling back then finds its run's token known).
        server = grpc.aio.server(options=SERVER_OPTIONS)
        port = self._listen(server, None if tls is None else tls[0])
        self._server, self._port = server, port
        # Stopped here if what follows fails; on a normal exit, the same (idempotent) stop registered below runs
        # first, so that calls stop before the runs do.
        stack.push_async_callback(self._stop_grpc)
        controller = ActionServer(token_for=lambda run_id: action_token(self._token, run_id))
        address = settings.controller.address or _reachable(self._host, port)
        controller.attach(server, address, tls_ca=None if tls is None else tls[1])
        self.controller = controller
        source = self._source
        if source is None:
            # Imported here: the runtime and its backends are what a server needs, but not what tests with their
            # own source, or the client side of this package, should load.
            from flytelike._remote._runtime_source import RuntimeRunSource

            platform, factories = await anyio.to_thread.run_sync(backend_factories, settings.serve.backends)
            source = await stack.enter_async_context(
                RuntimeRunSource(
                    settings,
                    platform=settings.serve.platform or platform,
                    backends=factories,
                    controller=controller,
                    executor=executor_name(url),
                )
            )
        # The writer must outlive the source: runs stopped when the source is left report their end through it.
        stack.push_async_callback(hub.settled)
        await self._take_over(state, source, hub)
        tg.start_soon(self._reconcile, state, source)
        access = Access(self._token, state)
        self.blobs = BlobServicer(store=store, access=access, scratch=settings.home / "uploads")
        runs = RunServicer(
            state=state,
            hub=hub,
            source=source,
            store=store,
            access=access,
            server_token=self._token,
            abort_requested=lambda: self._aborts.set(),
        )
        runs_pb2_grpc.add_RunServiceServicer_to_server(runs, server)
        blobs_pb2_grpc.add_BlobServiceServicer_to_server(self.blobs, server)
        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        reflection.enable_server_reflection(
            (RUN_SERVICE, BLOB_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self._health = checker
        stack.push_async_callback(self._stop_grpc)
        await server.start()
        self._started = True
        for service in ("", RUN_SERVICE, BLOB_SERVICE):
            await checker.set(service, health_pb2.HealthCheckResponse.SERVING)

    def _credentials(self) -> tuple[grpc.ServerCredentials, bytes] | None:
        """The server's TLS credentials and the certificate its tasks check it against (``[controller] tls_ca``,
        else its own chain); None without TLS."""
        serve = self.settings.serve
        if not serve.tls_cert:
            return None
        pem: dict[str, bytes] = {}
        for setting, path in (("serve.tls_cert", serve.tls_cert), ("serve.tls_key", serve.tls_key)):
            try:
                pem[setting] = Path(path).expanduser().read_bytes()
            except OSError as e:
                raise ConfigError(setting, path, f"cannot be read ({e.strerror})") from None
        ca = pem_setting(self.settings.controller.tls_ca, setting="controller.tls_ca") or pem["serve.tls_cert"]
        return grpc.ssl_server_credentials([(pem["serve.tls_key"], pem["serve.tls_cert"])]), ca

    def _listen(self, server: grpc.aio.Server, credentials: grpc.ServerCredentials | None) -> int:
        try:
            if credentials is not None:
                port = server.add_secure_port(self._bind, credentials)
            else:
                port = server.add_insecure_port(self._bind)
        except RuntimeError as e:
            raise BackendError(f"the server cannot listen on {self._bind}: {e}") from None
        if port == 0:
            raise BackendError(f"the server cannot listen on {self._bind}: the address is in use or not local")
        return port

    async def _stop_grpc(self) -> None:
        server, checker = self._server, self._health
        self._server = self._health = None
        if server is None:
            return
        with anyio.CancelScope(shield=True):
            if not self._started:
                # A server that never started keeps its port until stopped, and stopping needs it started: this
                # one failed before it served anything (it has nothing to answer with yet either way).
                await server.start()
            if checker is not None:
                await checker.enter_graceful_shutdown()
            await server.stop(GRACE_SECONDS if self._started else None)
            self._started = False

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(None, None, None)
            log.info("stopped")

    async def _take_over(self, state: ServerState, source: RunSource, hub: Hub) -> None:
        """Go on with the runs a previous server process left unfinished, and with its pending aborts."""
        resume = getattr(source, "resume", None)
        for run_id in await state.unfinished_runs():
            request = await state.run_request(run_id)
            if resume is None or request is None:
                if await state.set_run_state(run_id, "lost", error=LOST) is not None:
                    log.info("run %s lost: %s", run_id, LOST)
                continue
            points, last_seq = resume_points(await state.action_events(run_id))
            try:
                await resume(run_id, request, hub, points, last_seq)
            except Exception as e:
                log.exception("run %s could not be taken over after the restart", run_id)
                await state.set_run_state(run_id, "failed", error=f"could not be taken over after a restart: {e}")
                continue
            log.info("run %s taken over: %d actions recorded, going on", run_id, len(points))
        if await state.pending_aborts():
            self._aborts.set()  # the reconciler carries them out once it starts

    async def _reconcile(self, state: ServerState, source: RunSource) -> None:
        """Carry out recorded abort requests, oldest first (woken by each new one)."""
        while True:
            await self._aborts.wait()
            self._aborts = anyio.Event()
            for abort in await state.pending_aborts():
                try:
                    outcome = await source.abort(abort.run_id, abort.action_id, abort.reason)
                except Exception as e:
                    log.exception("abort of run %s failed", abort.run_id)
                    outcome = f"failed: {e}"
                await state.abort_done(abort.id, outcome)


def _reachable(host: str, port: int) -> str:
    """The address tasks on this machine call back on when ``[controller] address`` names none: loopback when the
    server listens on every interface (set the address for tasks elsewhere, e.g. a Service's name in a cluster)."""
    if host in ("0.0.0.0", "[::]", ""):
        return f"127.0.0.1:{port}"
    return f"{host}:{port}"
