"""``KubernetesEmulator``: the API server, scheduler and kubelet together on a loopback port, for tests and demos."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc
import yaml

from flytelike.testing.kubernetes._faults import Counters, Faults
from flytelike.testing.kubernetes._kubelet import Kubelet
from flytelike.testing.kubernetes._nodes import DEFAULT_NODES, NodeSpec
from flytelike.testing.kubernetes._scheduler import Scheduler
from flytelike.testing.kubernetes._server import ApiServer
from flytelike.testing.kubernetes._state import ServerConfig
from flytelike.testing.kubernetes._watch import WatchSettings

__all__ = ["KubernetesEmulator"]

JSON = dict[str, Any]
T = TypeVar("T")


class KubernetesEmulator:
    """A Kubernetes API server with a scheduler and a kubelet, all in this process (an async context manager).

    Pods created through the official client (``kubernetes.aio``) are validated, scheduled onto ``nodes`` by their
    requests, node selectors and taints, and their containers' commands run as local processes, with the
    container's environment, memory limit and ``activeDeadlineSeconds``. Images are not pulled or run.

    Args:
        nodes: the cluster's nodes; default: two of 8 cpu and 32Gi, one with an NVIDIA A10G GPU.
        fail_rate: the fraction of client requests answered with 500 or 429 (see :attr:`faults`).
        drop_watch_every: close client watches after this many events (0: never).
        token: a bearer token every request must carry (None: no authentication).
        namespaces: the namespaces that exist.
        missing_images: images whose pull fails (ErrImagePull, then ImagePullBackOff).
        strict_names: pod names must be at most 63 characters (their hostname), stricter than the real 253.
        strict_fields: reject unknown fields unless the request asks ``fieldValidation=Warn`` or ``Ignore``.
        history: how many changes a watch can resume from before 410 Gone.
        bookmark_interval: seconds between watch bookmarks.
        port: the API server's port (0: a free one).
        seed: the seed of fault injection's random choices.

    Attributes:
        url: the API server's URL, once entered.
        kubeconfig_path: a kubeconfig file for the official client (``config.load_kube_config(path)``).
        counters: client requests per endpoint (``counters["create pods"]``).
        faults: fault injection settings; assign to its attributes at any time.

    Example:
        >>> import anyio
        >>> async def main() -> list[str]:
        ...     async with KubernetesEmulator() as k8s:
        ...         return [n["metadata"]["name"] for n in k8s.nodes()]
        >>> anyio.run(main)
        ['node-1', 'gpu-1']
    """

    def __init__(
        self,
        *,
        nodes: Sequence[NodeSpec] = DEFAULT_NODES,
        fail_rate: float = 0.0,
        drop_watch_every: int = 0,
        token: str | None = None,
        namespaces: Sequence[str] = ("default",),
        missing_images: Collection[str] = (),
        strict_names: bool = True,
        strict_fields: bool = True,
        history: int = 1000,
        bookmark_interval: float = 1.0,
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        if not nodes:
            raise ValueError("nodes must name at least one node (NodeSpec); the default has two")
        if history < 1:
            raise ValueError(f"history must be at least 1 change, not {history}")
        self.faults = Faults(fail_rate=fail_rate, drop_watch_every=drop_watch_every, seed=seed)
        self.counters = Counters()
        self._config = ServerConfig(
            namespaces=tuple(namespaces),
            strict_names=strict_names,
            strict_fields=strict_fields,
            watch=WatchSettings(bookmark_interval=bookmark_interval),
            history=history,
        )
        self._nodes = tuple(nodes)
        self._token = token
        self._missing = frozenset(missing_images)
        self._port = port
        self._server = ApiServer(self._config, self.faults, self.counters, token)
        self._stack: contextlib.AsyncExitStack | None = None
        self._dir: Path | None = None
        self.url = ""
        self.kubeconfig_path = Path()

    async def __aenter__(self) -> KubernetesEmulator:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            self._dir = Path(tempfile.mkdtemp(prefix="flytelike-k8s-"))
            stack.callback(shutil.rmtree, self._dir, True)
            self.url = await self._server.start(port=self._port)
            stack.push_async_callback(self._server.close)
            self.kubeconfig_path = self._dir / "kubeconfig"
            await anyio.Path(self.kubeconfig_path).write_text(self._kubeconfig(), encoding="utf-8")
            kubelet = Kubelet(self.url, self._nodes, token=self._token, missing_images=self._missing)
            scheduler = Scheduler(self.url, token=self._token)
            # A task of its own rather than a task group held open across __aenter__/__aexit__: test frameworks
            # (pytest-asyncio's fixtures) enter and leave a context manager from different tasks. It is cancelled
            # and awaited on exit.
            components = asyncio.get_running_loop().create_task(self._components(kubelet, scheduler))
            stack.push_async_callback(_cancel_and_wait, components)
            ready = asyncio.ensure_future(kubelet.ready.wait())
            await asyncio.wait({components, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            if components.done():
                components.result()  # raises why the kubelet or scheduler could not start
                raise RuntimeError("the emulator's kubelet and scheduler ended while starting")
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    @staticmethod
    async def _components(kubelet: Kubelet, scheduler: Scheduler) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(kubelet.run)
            tasks.start_soon(scheduler.run)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    def _kubeconfig(self) -> str:
        user: JSON = {"token": self._token} if self._token is not None else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "flytelike-emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "flytelike-emulator", "user": user}],
            "contexts": [
                {
                    "name": "flytelike-emulator",
                    "context": {
                        "cluster": "flytelike-emulator",
                        "user": "flytelike-emulator",
                        "namespace": self._config.namespaces[0],
                    },
                }
            ],
            "current-context": "flytelike-emulator",
        }
        return yaml.safe_dump(config, sort_keys=False)

    # --- helpers for tests -------------------------------------------------------------------------------------

    def pods(self, namespace: str | None = None) -> list[JSON]:
        """The pods as stored (copies), oldest first."""
        return self._server.state.store.listing("Pod", namespace)

    def pod(self, name: str, namespace: str = "default") -> JSON | None:
        """One pod as stored (a copy), or None."""
        return self._server.state.store.find("Pod", namespace, name)

    def events(self, namespace: str | None = None) -> list[JSON]:
        """The events recorded (scheduler and kubelet), oldest first."""
        return self._server.state.store.listing("Event", namespace)

    def nodes(self) -> list[JSON]:
        """The registered nodes."""
        return self._server.state.store.listing("Node")

    def secrets(self, namespace: str | None = None) -> list[JSON]:
        return self._server.state.store.listing("Secret", namespace)

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion."""
        return self._server.state.store.resource_version

    def force_410(self) -> None:
        """Answer the next watch request with 410 Gone (an ERROR event, reason Expired)."""
        self.faults.expire_next_watch = True

    def compact(self) -> None:
        """Forget the change history, as an etcd compaction does: any watch resumed from before now gets 410."""
        self._server.state.store.expire_history()

    async def wait_until(self, predicate: Callable[[], T | None], *, timeout: float = 10.0) -> T:
        """Wait until ``predicate()`` returns something true (checked after every change); returns it.

        Raises:
            TimeoutError: it did not within ``timeout`` seconds.
        """
        store = self._server.state.store
        with anyio.move_on_after(timeout):
            while True:
                seen = store.resource_version
                result = predicate()
                if result:
                    return result
                await store.wait_for_change(seen)
        raise TimeoutError(f"the condition waited for did not hold within {timeout}s")

    async def wait_for_pod(
        self,
        name: str,
        predicate: Callable[[JSON | None], object],
        *,
        namespace: str = "default",
        timeout: float = 10.0,
    ) -> JSON:
        """Wait until ``predicate(pod)`` holds for the stored pod (None while it does not exist); returns the pod.

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds, naming the pod and its last state.
        """
        store = self._server.state.store

        def check() -> JSON | None:
            pod = store.find("Pod", namespace, name)
            return (pod or {"metadata": {"name": name}}) if predicate(pod) else None

        try:
            return await self.wait_until(check, timeout=timeout)
        except TimeoutError:
            last = store.find("Pod", namespace, name)
            raise TimeoutError(
                f"pod {namespace}/{name} did not reach the state waited for in {timeout}s: {last}"
            ) from None


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
