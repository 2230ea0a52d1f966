"""The remote services of one runtime: one blob store, bundles uploaded once, and the controller's ActionService.

Everything is started on first use: a run whose tasks all run in this process tree opens no store connection,
builds no bundle and listens on no port. The controller's service is started only when an attempt of a task that
may call other tasks starts elsewhere; each run gets its own token, valid while an attempt of that run is out.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from flytelike._backends._once import Once
from flytelike._config import Settings, aws_environment
from flytelike._executor import ActionRecord, ExecTask, Spawner
from flytelike._storage import BlobStore, bundle_key, data_key, open_store
from flytelike.errors import BackendError

if TYPE_CHECKING:
    from flytelike._backends._input import InProcess
    from flytelike._backends._remote._calls import RunCalls
    from flytelike._remote import ActionServer

__all__ = ["BundleRef", "RemoteServices", "module_path"]


@dataclass(frozen=True, slots=True)
class BundleRef:
    """A project's code in the store.

    Attributes:
        url: the bundle's URL in the store.
        digest: its digest's hex (``--bundle URL#sha256=HEX``).
        module: the task file's module path inside the bundle (``pkg.tasks``).
    """

    url: str
    digest: str
    module: str


class RemoteServices:
    """The store, the bundles and the controller that remote attempts of one runtime share."""

    def __init__(self, settings: Settings, in_process: InProcess, *, controller: ActionServer | None = None) -> None:
        self.settings = settings
        self.in_process = in_process
        self._store: BlobStore | None = None
        # A controller given (``flytelike serve``'s, on its own port) is its owner's to start and stop, and comes
        # back on the same address after a restart.
        self._given = controller is not None
        self.controller_restarts = self._given
        self._server: ActionServer | None = controller
        self._lock = anyio.Lock()
        self._bundles: Once[BundleRef] = Once()
        self._templates: dict[str, str] = {}
        self._runs: dict[str, tuple[RunCalls, str]] = {}
        self._run_bundles: dict[str, BundleRef] = {}
        self.uploads = 0  # bundles this runtime uploaded (the others were in the store already)

    @property
    def data_dir(self) -> Path:
        """Where files that results reference are brought back to on this machine."""
        return self.settings.home / "data"

    async def store(self) -> BlobStore:
        """The blob store of ``[store]``, opened on first use."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    store = open_store(self.settings.store.url, endpoint_url=self.settings.store.endpoint_url)
                    self._store = await store.__aenter__()
        return self._store

    def store_environment(self) -> Mapping[str, str]:
        """The variables a task's process needs to reach the same store."""
        env = {"FLYTELIKE_STORE__URL": self.settings.store.url}
        if self.settings.store.endpoint_url:
            env["FLYTELIKE_STORE__ENDPOINT_URL"] = self.settings.store.endpoint_url
        if self.settings.store.url.startswith("s3://"):
            # The store's credentials, when they come from this process's environment (a pod or a job gets its
            # own from its role instead).
            env.update(aws_environment())
        return env

    async def run_bundle(self, run_id: str, digest: str, module: str) -> BundleRef:
        """Name the bundle every task of a run comes from (a run started from a template: its code is not here).

        Raises:
            BackendError: the store holds no bundle of that digest (it must be uploaded before the run starts).
        """
        store = await self.store()
        key = bundle_key(digest)
        if await store.missing([key]):
            raise BackendError(
                f"run {run_id}: the code bundle sha256:{digest} is not in the store {self.settings.store.url}; "
                "upload it before starting the run"
            )
        found = self._run_bundles[run_id] = BundleRef(store.url(key), digest.removeprefix("sha256:"), module)
        return found

    def forget_run(self, run_id: str) -> None:
        self._run_bundles.pop(run_id, None)
        if self._runs.pop(run_id, None) is not None and self._server is not None:
            self._server.unregister(run_id)

    async def bundle_for(self, run: Spawner, task: ExecTask, platform: str) -> BundleRef:
        """The bundle an attempt of ``task`` in ``run`` fetches: the run's, or the one of the task's file here.

        Raises:
            BackendError: neither is known (a task defined outside any file).
        """
        found = self._run_bundles.get(run.id)
        if found is not None:
            return found
        code_file = self.in_process.code_file(task)
        if code_file is None:
            raise BackendError(
                f"task {task.name} cannot run on {platform}: its module has no file to ship as a code bundle "
                "(define it in a .py file)"
            )
        return await self.bundle(code_file)

    async def bundle(self, code_file: str) -> BundleRef:
        """The bundle of the project holding ``code_file``, uploaded unless the store has its digest.

        Built once per file: the first attempts of a fan-out all wait for the one build and upload.
        """
        return await self._bundles.get(code_file, lambda: self._build(code_file))

    async def _build(self, code_file: str) -> BundleRef:
        # Imported here, like the local backend's worker pool: bundling (pathspec, tarfile, gzip) costs the start-up
        # of every run, most of which never bundle anything.
        from flytelike._bundle import build_bundle

        cache = self.settings.home / "cache" / "bundles"
        bundle = await anyio.to_thread.run_sync(lambda: build_bundle(code_file, hash_cache=cache))
        hex_ = bundle.digest.removeprefix("sha256:")
        key = bundle_key(hex_)
        store = await self.store()
        if await store.missing([key]):
            # Written beside the hash cache, under a name no other upload of this digest uses at the same time.
            path = cache / f"{hex_}-{os.getpid()}-{id(self):x}.tar.gz"
            try:
                await anyio.to_thread.run_sync(bundle.write_to, path)
                await store.put_file(key, path)
            finally:
                path.unlink(missing_ok=True)
            self.uploads += 1
        return BundleRef(store.url(key), hex_, module_path(bundle.root, code_file))

    async def template(self, task: ExecTask) -> str:
        """The URL of the task's serialized template in the store (content-addressed, written once)."""
        url = self._templates.get(task.key)
        if url is None:
            data = task.template.SerializeToString(deterministic=True)
            key = data_key(hashlib.sha256(data).hexdigest())
            store = await self.store()
            await store.put(key, data)
            url = self._templates[task.key] = store.url(key)
        return url

    async def controller_address(self) -> str:
        """The address tasks call back on; the controller's service is started on first use."""
        if self._server is None:
            async with self._lock:
                if self._server is None:
                    # Imported here: grpc costs a tenth of a second, and most runs never start the controller.
                    from flytelike._remote import ActionServer

                    server = ActionServer(bind=_bind(self.settings.controller.bind))
                    self._server = await server.__aenter__()
        return self.settings.controller.address or self._server.address

    @property
    def controller_tls_ca(self) -> bytes | None:
        """The certificate tasks check the controller's against, when it speaks TLS."""
        return self._server.tls_ca if self._server is not None else None

    def attempt_started(self, run: Spawner, action: ActionRecord, task: ExecTask, attempt: int) -> str:
        """Let an attempt call back: its run's token (registered with the controller by the first attempt)."""
        entry = self._runs.get(run.id) or self._register(run, resuming=False)
        entry[0].started(action, task, attempt)
        return entry[1]

    def expect_run(self, run: Spawner) -> None:
        """Take calls for ``run`` before any of its attempts started here, until the run ends (:meth:`forget_run`):
        a run taken over after a restart, whose tasks (started by the controller before) call back with the run's
        token while their attempts are being found again. A call from an attempt not found yet waits for it a while
        instead of being refused."""
        if run.id not in self._runs:
            self._register(run, resuming=True)

    def _register(self, run: Spawner, *, resuming: bool) -> tuple[RunCalls, str]:
        # Imported here, with the controller: the controller's side of calls (worker messages, literal maps) is only
        # needed once a task elsewhere may call back.
        from flytelike._backends._remote._calls import RunCalls

        if self._server is None:
            raise BackendError("the controller was not started: call controller_address() first")
        calls = RunCalls(run, self, resuming=resuming)
        entry = self._runs[run.id] = (calls, self._server.register(run.id, calls))
        return entry

    def attempt_ended(self, run: Spawner, action: ActionRecord) -> None:
        """The attempt is over; the run's token stops working once none of its attempts is out."""
        entry = self._runs.get(run.id)
        if entry is None:
            return
        if entry[0].ended(action) == 0 and not entry[0].resuming:
            del self._runs[run.id]
            if self._server is not None:
                self._server.unregister(run.id)

    def streamed_logs(self, run: Spawner, action: ActionRecord, attempt: int) -> bool:
        """Whether the attempt's output reached the controller while it ran."""
        entry = self._runs.get(run.id)
        return entry is not None and entry[0].streamed(action.id, attempt)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            server, self._server = self._server, None
            if server is not None and not self._given:
                await server.__aexit__(None, None, None)
            store, self._store = self._store, None
            if store is not None:
                await store.aclose()


def module_path(root: Path, code_file: str) -> str:
    """The dotted module of ``code_file`` inside a bundle of ``root`` (``pkg/tasks.py`` -> ``pkg.tasks``)."""
    parts = list(Path(code_file).resolve().relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _bind(value: str) -> str:
    """``[controller] bind`` as HOST:PORT (a host alone listens on any free port)."""
    if value.startswith("["):
        return value if "]:" in value else f"{value}:0"
    return value if ":" in value else f"{value}:0"


def python() -> str:
    """The interpreter that runs ``flytelike-entry`` for a process on this machine."""
    return sys.executable
