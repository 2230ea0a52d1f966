"""The RunService of ``flytelike serve`` (see ``proto/flytelike/remote/v1/runs.proto``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from flytelike._proto.remote.v1 import runs_pb2, runs_pb2_grpc
from flytelike._remote._access import Access, token_sha256
from flytelike._remote._hub import Hub
from flytelike._remote._reads import EventReads
from flytelike._remote._source import RunSource
from flytelike._remote._state import TERMINAL_RUN_STATES, NewRun, RunFilter, ServerState
from flytelike._storage import BlobStore, bundle_key
from flytelike.errors import FlytelikeError, SpecError

__all__ = ["RunServicer", "run_token"]

log = logging.getLogger("flytelike.serve")

Context = grpc.aio.ServicerContext[Any, Any]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
_ACTION_DONE = frozenset({"succeeded", "failed", "timed_out", "aborted", "cached", "recovered"})


def run_token(server_token: str, run_id: str) -> str:
    """The run's token: derived from the server's, so a repeated CreateRun returns the same one without the
    server keeping any token in the clear."""
    digest = hmac.new(server_token.encode(), f"run-token:{run_id}".encode(), hashlib.sha256).digest()
    return "run-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _new_run_id(name: str) -> str:
    suffix = os.urandom(4).hex()
    return f"{name}-{suffix}" if name else time.strftime("r%Y%m%d-%H%M%S-", time.gmtime()) + suffix


def _check_create(request: runs_pb2.CreateRunRequest) -> runs_pb2.TaskCode:
    """The root's TaskCode; raises SpecError naming the first field that is wrong."""
    if not request.request_id:
        raise SpecError("request_id", "", "must not be empty", accepted="a UUID chosen by the client")
    if not _DIGEST.fullmatch(request.bundle_digest):
        raise SpecError("bundle_digest", request.bundle_digest, "is not a digest", accepted="sha256:<64 hex digits>")
    if request.name and not _NAME.fullmatch(request.name):
        raise SpecError(
            "name", request.name, "is not a run name", accepted="lowercase letters, digits, '-'; e.g. nightly"
        )
    if ":" in request.platform or "=" in request.platform:
        raise SpecError(
            "platform",
            request.platform,
            "sets platform options, which a server run does not take (the server's settings hold them)",
            accepted="a backend name the server runs, e.g. kubernetes or batch",
        )
    for code in request.tasks:
        key = f"{code.template.id.name}@{code.template.id.version}"
        if key == request.root:
            if not code.module:
                raise SpecError("tasks.module", "", f"the root task {key} names no module", accepted="e.g. pkg.tasks")
            return code
    known = ", ".join(f"{c.template.id.name}@{c.template.id.version}" for c in request.tasks) or "none"
    raise SpecError("root", request.root, f"is none of the tasks sent ({known})", accepted="name@version of a task")


class RunServicer(runs_pb2_grpc.RunServiceServicer):
    """RunService over the records, the hub and the run source.

    Args:
        state: the records.
        hub: where reports are queued and watchers wait.
        source: what runs the runs.
        store: the blob store bundles were uploaded to.
        access: the token checks.
        server_token: the server's token (run tokens derive from it).
        abort_requested: called after an abort request is recorded (the reconciler's wake-up).
    """

    def __init__(
        self,
        *,
        state: ServerState,
        hub: Hub,
        source: RunSource,
        store: BlobStore,
        access: Access,
        server_token: str,
        abort_requested: Callable[[], None],
    ) -> None:
        self._state = state
        self._reads = EventReads(state)
        self._hub = hub
        self._source = source
        self._store = store
        self._access = access
        self._server_token = server_token
        self._abort_requested = abort_requested

    async def _run(self, context: Context, method: str, run_id: str) -> runs_pb2.Run:
        await self._access.run(context, method, run_id)
        found = await self._state.get_run(run_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{method}: no run {run_id!r} on this server")
        assert found is not None
        return found

    async def CreateRun(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.CreateRunRequest, context: Context
    ) -> runs_pb2.CreateRunResponse:
        await self._access.server(context, "CreateRun")
        try:
            root = _check_create(request)
        except SpecError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"CreateRun: {e}")
            raise
        existing = await self._state.run_by_request(request.request_id)
        if existing is not None:
            return runs_pb2.CreateRunResponse(run=existing, created=False, run_token=self._token(existing.id))
        if await self._store.missing([bundle_key(request.bundle_digest)]):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"CreateRun: the bundle {request.bundle_digest} is not on this server; upload it first "
                "(BlobService.FindMissing, then Upload)",
            )
        run_id = _new_run_id(request.name)
        token = self._token(run_id)
        new = NewRun(run_id, request, root.template.id.name, token_sha256(token), time.time())
        run, created = await self._state.create_run(new)
        if not created:  # a concurrent CreateRun with the same request id won
            return runs_pb2.CreateRunResponse(run=run, created=False, run_token=self._token(run.id))
        log.info("run %s queued: %s (request %s)", run.id, run.task, request.request_id)
        try:
            await self._source.start(run.id, request, self._hub)
        except FlytelikeError as e:
            log.warning("run %s could not start: %s", run.id, e)
            self._hub.finished(run.id, "failed", error=f"could not start: {e}")
            await self._hub.settled()  # so that the answer says it failed
        found = await self._state.get_run(run.id)
        return runs_pb2.CreateRunResponse(run=found or run, created=True, run_token=token)

    def _token(self, run_id: str) -> str:
        return run_token(self._server_token, run_id)

    async def GetRun(self, request: runs_pb2.GetRunRequest, context: Context) -> runs_pb2.Run:  # noqa: N802
        return await self._run(context, "GetRun", request.run_id)

    async def ListRuns(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.ListRunsRequest, context: Context
    ) -> runs_pb2.ListRunsResponse:
        await self._access.server(context, "ListRuns")
        query = RunFilter(
            states=tuple(request.states),
            task=request.task,
            since=request.since,
            labels=dict(request.labels),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        try:
            found, token = await self._state.list_runs(query)
        except SpecError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"ListRuns: {e}")
            raise
        return runs_pb2.ListRunsResponse(runs=found, next_page_token=token)

    async def ListActions(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.ListActionsRequest, context: Context
    ) -> runs_pb2.ListActionsResponse:
        await self._run(context, "ListActions", request.run_id)
        return runs_pb2.ListActionsResponse(actions=await self._state.list_actions(request.run_id))

    async def WatchRun(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[runs_pb2.WatchRunResponse]:
        await self._run(context, "WatchRun", request.run_id)
        cursor = request.after_seq
        synced = False
        while True:
            # Taken before reading: a commit between the read and the wait still wakes this watch.
            changed = self._hub.changed(request.run_id)
            batch = await self._reads.after(request.run_id, cursor)
            if batch:
                # A run's terminal event is its last: nothing is recorded after it.
                yield runs_pb2.WatchRunResponse(events=runs_pb2.Events(events=batch))
                cursor = batch[-1].seq
                if not batch[-1].action_id and batch[-1].state in TERMINAL_RUN_STATES:
                    return
                continue
            if not synced:
                synced = True
                yield runs_pb2.WatchRunResponse(synced=runs_pb2.Synced(seq=cursor))
            await changed.wait()

    async def AbortRun(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.AbortRunRequest, context: Context
    ) -> runs_pb2.AbortResponse:
        run = await self._run(context, "AbortRun", request.run_id)
        if run.state in TERMINAL_RUN_STATES:
            return runs_pb2.AbortResponse(recorded=False)
        await self._state.record_abort(run.id, "", request.reason or "aborted by request")
        log.info("run %s: abort requested%s", run.id, f" ({request.reason})" if request.reason else "")
        self._abort_requested()
        return runs_pb2.AbortResponse(recorded=True)

    async def AbortAction(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.AbortActionRequest, context: Context
    ) -> runs_pb2.AbortResponse:
        run = await self._run(context, "AbortAction", request.run_id)
        action = await self._state.action(run.id, request.action_id)
        if action is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"AbortAction: run {run.id} has no action {request.action_id!r}"
            )
        assert action is not None
        if run.state in TERMINAL_RUN_STATES or action.state in _ACTION_DONE:
            return runs_pb2.AbortResponse(recorded=False)
        await self._state.record_abort(run.id, action.id, request.reason or "aborted by request")
        log.info("run %s: abort of action %s requested", run.id, action.id)
        self._abort_requested()
        return runs_pb2.AbortResponse(recorded=True)

    async def GetOutputs(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.GetOutputsRequest, context: Context
    ) -> runs_pb2.GetOutputsResponse:
        await self._run(context, "GetOutputs", request.run_id)
        found = await self._state.outputs(request.run_id)
        assert found is not None
        state, outputs, outputs_json, error = found
        if state != "succeeded":
            why = f"it is {state}" + (f": {error}" if error else "")
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"GetOutputs: run {request.run_id} has none; {why}"
            )
        return runs_pb2.GetOutputsResponse(outputs=outputs or b"", outputs_json=outputs_json or "")

    async def TailLogs(  # noqa: N802 (the gRPC method's name)
        self, request: runs_pb2.TailLogsRequest, context: Context
    ) -> AsyncIterator[runs_pb2.LogData]:
        run = await self._run(context, "TailLogs", request.run_id)
        attempt = request.attempt
        offset = request.after_offset
        while True:
            changed = self._hub.changed(run.id)
            action = await self._state.action(run.id, request.action_id)
            if attempt == 0:
                attempt = action.attempts if action is not None and action.attempts else 0
            if attempt:
                for start, data in await self._state.logs_after(run.id, request.action_id, attempt, offset):
                    yield runs_pb2.LogData(attempt=attempt, offset=start, data=data)
                    offset = start + len(data)
            if not request.follow:
                return
            current = await self._state.get_run(run.id)
            over = current is None or current.state in TERMINAL_RUN_STATES
            if action is not None and (action.state in _ACTION_DONE or action.attempts > attempt > 0):
                over = True
            if over:
                # One more read: output written together with the end is not lost.
                if attempt:
                    for start, data in await self._state.logs_after(run.id, request.action_id, attempt, offset):
                        yield runs_pb2.LogData(attempt=attempt, offset=start, data=data)
                return
            await changed.wait()
