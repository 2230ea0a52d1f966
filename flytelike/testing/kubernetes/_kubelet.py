"""The kubelet of the emulated nodes: registers them, runs the pods bound to them (one :class:`PodWorker` each),
carries out graceful deletion, and serves container logs over HTTP for the API server's ``pods/log``.

Like the scheduler it only talks to the API server over HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

import anyio
import anyio.abc
from aiohttp import web

from flytelike.testing._launcher import Launched, Launcher
from flytelike.testing.kubernetes._client import ApiClient, HttpError, Informer
from flytelike.testing.kubernetes._nodes import NodeSpec
from flytelike.testing.kubernetes._pod_worker import PodWorker

__all__ = ["Kubelet"]

JSON = dict[str, Any]
_TERMINAL: Final = ("Succeeded", "Failed")
_FOLLOW_POLL: Final = 0.05
_CHUNK: Final = 65536
_log = logging.getLogger(__name__)


class Kubelet:
    """Runs the pods of ``nodes`` until cancelled.

    Args:
        url: the API server.
        nodes: the nodes this kubelet registers and runs pods for.
        token: the API server's bearer token, if it needs one.
        missing_images: images whose pull fails (ErrImagePull, then ImagePullBackOff).
    """

    def __init__(
        self,
        url: str,
        nodes: Sequence[NodeSpec],
        *,
        token: str | None = None,
        missing_images: Collection[str] = (),
    ) -> None:
        self._client = ApiClient(url, "kubelet", token=token)
        self._nodes = nodes
        self._names = {n.name for n in nodes}
        self._missing = frozenset(missing_images)
        self._workers: dict[tuple[str, str], PodWorker] = {}
        self._informer = Informer(self._client, "/api/v1/pods", self._changed, {"fieldSelector": "spec.nodeName!="})
        self._tasks: anyio.abc.TaskGroup | None = None
        self._launcher = Launcher()
        self._root = Path(tempfile.mkdtemp(prefix="flytelike-kubelet-"))
        self.ready = anyio.Event()

    async def run(self) -> None:
        """Register the nodes, then run their pods until cancelled (which kills every container)."""
        runner = web.AppRunner(self._log_app(), handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        port = sock.getsockname()[1]
        try:
            async with self._launcher, anyio.create_task_group() as tasks:
                self._tasks = tasks
                for node in self._nodes:
                    await self._register(node, port)
                tasks.start_soon(self._informer.run)
                await self._informer.synced.wait()
                self.ready.set()
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
                await self._client.aclose()
                shutil.rmtree(self._root, ignore_errors=True)

    async def _register(self, node: NodeSpec, port: int) -> None:
        try:
            await self._client.request("POST", "/api/v1/nodes", body=node.node_object(kubelet_port=port))
        except HttpError as error:
            if error.status != 409:
                raise

    async def _changed(self, type_: str, pod: JSON) -> None:
        if type_ == "SYNCED":
            return
        key = Informer.key(pod)
        worker = self._workers.get(key)
        if worker is not None and worker.pod["metadata"]["uid"] != pod["metadata"]["uid"]:
            worker.scope.cancel()  # a new pod of the same name: the old one is gone
            await self._forget(key)
            worker = None
        if type_ == "DELETED":
            if worker is not None:
                worker.scope.cancel()
                await self._forget(key)
            return
        if pod["spec"].get("nodeName") not in self._names:
            return
        deleting = pod["metadata"].get("deletionTimestamp")
        if worker is None:
            if deleting or pod.get("status", {}).get("phase") in _TERMINAL:
                if deleting:
                    await self._delete_for_good(pod)
                return
            worker = PodWorker(
                pod,
                client=self._client,
                launcher=self._launcher,
                log_dir=self._root / pod["metadata"]["uid"],
                missing_images=self._missing,
            )
            self._workers[key] = worker
            assert self._tasks is not None
            self._tasks.start_soon(worker.run)
        elif deleting:
            worker.request_delete(float(pod["metadata"].get("deletionGracePeriodSeconds") or 0))
            if worker.done.is_set():
                await self._delete_for_good(pod)

    async def _forget(self, key: tuple[str, str]) -> None:
        worker = self._workers.pop(key)
        await anyio.to_thread.run_sync(shutil.rmtree, worker.log_dir, True)

    async def _delete_for_good(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(HttpError):
            await self._client.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                params={"gracePeriodSeconds": "0"},
            )

    # --- logs --------------------------------------------------------------------------------------------------

    def _log_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        return app

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        worker = self._workers.get((info["namespace"], info["pod"]))
        container = info["container"]
        if worker is None or not worker.started(container):
            return web.Response(status=404, text=f'container "{container}" in pod "{info["pod"]}" is not running here')
        process = worker.launched[container]
        query = request.query
        follow = query.get("follow", "").lower() in ("1", "true")
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        path = worker.log_path(container)
        with contextlib.suppress(ConnectionError):
            # Opened and closed on the loop (a local file: no wait), not in a worker thread: a request cancelled
            # because its client went away would lose a file opened or closed there, and leave it open.
            with open(path, "rb") as source:
                await self._stream(response, source, process, follow=follow, tail=tail, limit=limit)
            await response.write_eof()
        return response

    @staticmethod
    async def _stream(
        response: web.StreamResponse,
        source: BinaryIO,
        process: Launched,
        *,
        follow: bool,
        tail: int | None,
        limit: int | None,
    ) -> None:
        sent = 0
        if tail is not None:
            lines = (await anyio.to_thread.run_sync(source.read)).splitlines(keepends=True)
            first = b"".join(lines[-tail:] if tail > 0 else [])
            await response.write(first[:limit] if limit is not None else first)
            sent += len(first)
        while limit is None or sent < limit:
            chunk = await anyio.to_thread.run_sync(source.read, _CHUNK if limit is None else min(_CHUNK, limit - sent))
            if chunk:
                await response.write(chunk)
                sent += len(chunk)
                continue
            if not follow or process.exit is not None:
                # Ended: what it wrote before ending is in the file now; send the rest, then stop.
                rest = await anyio.to_thread.run_sync(source.read) if process.exit is not None else b""
                if rest:
                    await response.write(rest if limit is None else rest[: limit - sent])
                break
            await anyio.sleep(_FOLLOW_POLL)
