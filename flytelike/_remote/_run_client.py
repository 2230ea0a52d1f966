"""The client side of the control plane: RunService and BlobService calls on a grpc.aio channel.

Used by ``flytelike run --remote``, ``runs --remote``, ``logs --remote``, ``abort`` and ``fl.Remote``. Uploads go
through FindMissing first, so an object the server has is never sent again. An object the server lacks goes straight
into its store when the store is S3 (a PUT to a URL the server presigns, then CommitUpload, which verifies it);
otherwise, or when anything on that path is refused or fails before the commit, it is streamed through the server
with Upload.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType

import anyio
import grpc
import grpc.aio

from flytelike._proto.remote.v1 import blobs_pb2, blobs_pb2_grpc, runs_pb2, runs_pb2_grpc
from flytelike._remote import _presigned
from flytelike._remote._auth import bearer
from flytelike._remote._state import TERMINAL_RUN_STATES
from flytelike.errors import BackendError, SpecError

__all__ = ["CHUNK", "RunClient", "channel_target"]

CHUNK = 1 << 20
_RETRY = 0.5  # seconds between WatchRun reconnections
_ACCEPTED = "HOST:PORT, grpc://HOST:PORT or grpcs://HOST:PORT"

log = logging.getLogger("flytelike.remote")


def channel_target(endpoint: str) -> tuple[str, bool]:
    """``endpoint`` as (gRPC target, TLS?).

    Raises:
        SpecError: naming ``remote.endpoint``, for an empty endpoint or another scheme.
    """
    if not endpoint:
        raise SpecError(
            "remote.endpoint",
            endpoint,
            "is not set (--endpoint, [remote] endpoint, FLYTELIKE_REMOTE__ENDPOINT)",
            accepted=_ACCEPTED,
        )
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return endpoint, False
    if scheme not in ("grpc", "grpcs") or not rest:
        raise SpecError("remote.endpoint", endpoint, f"the scheme {scheme!r} is not grpc or grpcs", accepted=_ACCEPTED)
    return rest.rstrip("/"), scheme == "grpcs"


class RunClient:
    """Calls to one control plane; an async context manager holding the channel.

    Args:
        endpoint: the server (see :func:`channel_target`).
        token: the server's token, or a run's token (which may only read and abort that run).
        tls_ca: PEM bytes of the CA that signed the server's certificate (grpcs:// only).
    """

    def __init__(self, endpoint: str, *, token: str, tls_ca: bytes | None = None) -> None:
        self.endpoint = endpoint
        self._target, self._tls = channel_target(endpoint)
        self._metadata = bearer(token) if token else ()
        self._tls_ca = tls_ca
        self._channel: grpc.aio.Channel | None = None
        self._runs: runs_pb2_grpc.RunServiceAsyncStub | None = None
        self._blobs: blobs_pb2_grpc.BlobServiceAsyncStub | None = None

    async def __aenter__(self) -> RunClient:
        if self._tls:
            self._channel = grpc.aio.secure_channel(self._target, grpc.ssl_channel_credentials(self._tls_ca))
        else:
            self._channel = grpc.aio.insecure_channel(self._target)
        self._runs = runs_pb2_grpc.RunServiceStub(self._channel)
        self._blobs = blobs_pb2_grpc.BlobServiceStub(self._channel)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with anyio.CancelScope(shield=True):
                await channel.close()

    @property
    def runs(self) -> runs_pb2_grpc.RunServiceAsyncStub:
        if self._runs is None:
            raise RuntimeError("RunClient used outside `async with`")
        return self._runs

    @property
    def blobs(self) -> blobs_pb2_grpc.BlobServiceAsyncStub:
        if self._blobs is None:
            raise RuntimeError("RunClient used outside `async with`")
        return self._blobs

    def _failed(self, method: str, error: grpc.aio.AioRpcError) -> BackendError:
        return BackendError(f"{method} on {self.endpoint} failed: {error.code().name}: {error.details()}")

    # --- blobs ------------------------------------------------------------------------------------------------

    async def find_missing(self, refs: list[blobs_pb2.BlobRef]) -> list[blobs_pb2.BlobRef]:
        try:
            answer = await self.blobs.FindMissing(blobs_pb2.FindMissingRequest(blobs=refs), metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise self._failed("FindMissing", e) from None
        return list(answer.missing)

    async def upload(self, ref: blobs_pb2.BlobRef, path: Path) -> bool:
        """Send the file at ``path`` as ``ref``; True when the server stored it (False: it had it already).

        Straight to the server's store when it offers a presigned URL, else streamed through the server.

        Raises:
            BackendError: the server refused the object (its content does not match ``ref``) or the call failed.
        """
        size = (await anyio.Path(path).stat()).st_size
        direct = await self._upload_direct(ref, path, size)
        if direct is not None:
            return direct
        return await self._upload_streamed(ref, path, size)

    async def _upload_direct(self, ref: blobs_pb2.BlobRef, path: Path, size: int) -> bool | None:
        """A presigned upload, committed; None when the server offers none or the PUT fails (stream it instead)."""
        if not _presigned.available():
            return None
        request = blobs_pb2.PresignUploadRequest(blob=ref, size=size)
        try:
            offer = await self.blobs.PresignUpload(request, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            # UNIMPLEMENTED from a server older than presigned uploads; anything else, Upload reports it again.
            log.debug("PresignUpload on %s failed (%s); streaming instead", self.endpoint, e.code().name)
            return None
        if not offer.available:
            log.debug("no presigned upload from %s: %s", self.endpoint, offer.reason)
            return None
        try:
            await _presigned.put_file(offer.url, path, size=size, headers=offer.headers)
        except _presigned.PresignedPutError as e:
            # The store may be out of this machine's reach (an endpoint_url on the server's network) or refuse
            # the signature (a region mismatch): the server's own path still works.
            log.warning("direct upload of %s failed, streaming it through %s instead: %s", ref.digest, self.endpoint, e)
            return None
        commit = blobs_pb2.CommitUploadRequest(blob=ref, staging_key=offer.staging_key, size=size)
        try:
            answer = await self.blobs.CommitUpload(commit, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise self._failed("CommitUpload", e) from None
        return bool(answer.stored)

    async def _upload_streamed(self, ref: blobs_pb2.BlobRef, path: Path, size: int) -> bool:
        async def messages() -> AsyncIterator[blobs_pb2.UploadRequest]:
            yield blobs_pb2.UploadRequest(header=blobs_pb2.UploadHeader(blob=ref, size=size))
            async with await anyio.open_file(path, "rb") as source:
                while chunk := await source.read(CHUNK):
                    yield blobs_pb2.UploadRequest(chunk=chunk)

        try:
            answer = await self.blobs.Upload(messages(), metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise self._failed("Upload", e) from None
        return bool(answer.stored)

    async def upload_bundle(self, digest: str, write: Callable[[Path], object], scratch: Path) -> bool:
        """Upload the bundle ``digest`` unless the server has it; ``write(path)`` writes its archive on demand.

        Returns True when it was uploaded.
        """
        ref = blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_BUNDLE, digest=digest)
        if not await self.find_missing([ref]):
            return False
        await anyio.Path(scratch).mkdir(parents=True, exist_ok=True)
        path = scratch / f"{digest.removeprefix('sha256:')}-{uuid.uuid4().hex}.tar.gz"
        try:
            await anyio.to_thread.run_sync(write, path)
            return await self.upload(ref, path)
        finally:
            await anyio.Path(path).unlink(missing_ok=True)

    async def upload_data(self, data: bytes, scratch: Path) -> str:
        """Upload ``data`` unless the server has it; its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        ref = blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_DATA, digest=digest)
        if await self.find_missing([ref]):
            await anyio.Path(scratch).mkdir(parents=True, exist_ok=True)
            path = anyio.Path(scratch / f"{uuid.uuid4().hex}.blob")
            try:
                await path.write_bytes(data)
                await self.upload(ref, Path(path))
            finally:
                await path.unlink(missing_ok=True)
        return digest

    # --- runs -------------------------------------------------------------------------------------------------

    async def create_run(self, request: runs_pb2.CreateRunRequest) -> runs_pb2.CreateRunResponse:
        """CreateRun, retried on UNAVAILABLE with the same request id (so never two runs)."""
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        for attempt in range(5):
            try:
                return await self.runs.CreateRun(request, metadata=self._metadata)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                    raise self._failed("CreateRun", e) from None
                await anyio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def get_run(self, run_id: str) -> runs_pb2.Run:
        try:
            return await self.runs.GetRun(runs_pb2.GetRunRequest(run_id=run_id), metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise self._failed("GetRun", e) from None

    async def list_runs(
        self,
        *,
        states: tuple[str, ...] = (),
        task: str = "",
        since: float = 0.0,
        labels: Mapping[str, str] | None = None,
        limit: int = 50,
    ) -> list[runs_pb2.Run]:
        """Runs, newest first, up to ``limit``, across pages."""
        found: list[runs_pb2.Run] = []
        token = ""
        while len(found) < limit:
            request = runs_pb2.ListRunsRequest(
                states=states,
                task=task,
                since=since,
                labels=dict(labels or {}),
                page_size=min(1000, limit - len(found)),
                page_token=token,
            )
            try:
                page = await self.runs.ListRuns(request, metadata=self._metadata)
            except grpc.aio.AioRpcError as e:
                raise self._failed("ListRuns", e) from None
            found.extend(page.runs)
            token = page.next_page_token
            if not token:
                break
        return found

    async def actions(self, run_id: str) -> list[runs_pb2.Action]:
        try:
            answer = await self.runs.ListActions(runs_pb2.ListActionsRequest(run_id=run_id), metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise self._failed("ListActions", e) from None
        return list(answer.actions)

    async def watch(self, run_id: str, *, after_seq: int = 0) -> AsyncIterator[runs_pb2.WatchRunResponse]:
        """The run's events after ``after_seq``, one per item (and the ``synced`` marker), until its terminal event;
        a broken stream is resumed from the last seq seen, so nothing is missed or repeated."""
        cursor = after_seq
        while True:
            call = self.runs.WatchRun(
                runs_pb2.WatchRunRequest(run_id=run_id, after_seq=cursor), metadata=self._metadata
            )
            try:
                async for message in call:
                    kind = message.WhichOneof("item")
                    if kind == "synced":
                        yield message
                        continue
                    for event in message.events.events if kind == "events" else [message.event]:
                        cursor = event.seq
                        yield runs_pb2.WatchRunResponse(event=event)
                        if not event.action_id and event.state in TERMINAL_RUN_STATES:
                            return
                return
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise self._failed("WatchRun", e) from None
            finally:
                call.cancel()
            await anyio.sleep(_RETRY)

    async def abort(self, run_id: str, action_id: str = "", *, reason: str = "") -> bool:
        try:
            if action_id:
                request = runs_pb2.AbortActionRequest(run_id=run_id, action_id=action_id, reason=reason)
                answer = await self.runs.AbortAction(request, metadata=self._metadata)
            else:
                answer = await self.runs.AbortRun(
                    runs_pb2.AbortRunRequest(run_id=run_id, reason=reason), metadata=self._metadata
                )
        except grpc.aio.AioRpcError as e:
            raise self._failed("AbortAction" if action_id else "AbortRun", e) from None
        return bool(answer.recorded)

    async def outputs(self, run_id: str) -> runs_pb2.GetOutputsResponse:
        try:
            return await self.runs.GetOutputs(runs_pb2.GetOutputsRequest(run_id=run_id), metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise self._failed("GetOutputs", e) from None

    async def tail_logs(
        self, run_id: str, action_id: str, *, attempt: int = 0, follow: bool = False, after_offset: int = 0
    ) -> AsyncIterator[runs_pb2.LogData]:
        request = runs_pb2.TailLogsRequest(
            run_id=run_id, action_id=action_id, attempt=attempt, follow=follow, after_offset=after_offset
        )
        call = self.runs.TailLogs(request, metadata=self._metadata)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise self._failed("TailLogs", e) from None
        finally:
            call.cancel()
