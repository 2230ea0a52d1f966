"""One watch per namespace for every pod of this backend: the only way the backend learns how its pods are doing.

It lists the pods carrying the backend's executor label once, then watches from that list's resourceVersion with
bookmarks, so that a watch that ends (the server's timeout, a dropped connection) resumes where it was; after 410
Gone (the version is too old) it lists again. No pod is ever polled: an attempt waits on its pod's
:meth:`PodWatch.changed` event. A pod that a fresh list no longer holds, or a DELETED event for it, makes it gone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import anyio.abc

from flytelike._backends.kubernetes._api import PodApi
from flytelike.errors import BackendError

__all__ = ["PodWatch"]

_log = logging.getLogger("flytelike.kubernetes")
WATCH_SECONDS = 300


class _GoneError(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class PodWatch:
    """The pods of one namespace with the backend's label, kept current (see the module's docstring)."""

    def __init__(self, api: PodApi, namespace: str, selector: str) -> None:
        self._api = api
        self.namespace = namespace
        self._selector = selector
        self.pods: dict[str, dict[str, Any]] = {}
        self.gone: set[str] = set()
        self._events: dict[str, anyio.Event] = {}
        self._expected: set[str] = set()
        self._seen: set[str] = set()  # pods this watch has seen exist
        self.ready = anyio.Event()
        self.lists = 0
        self.error: BaseException | None = None

    def expect(self, name: str) -> None:
        """A pod of this name is being created: follow it (and tell if it disappears)."""
        self._expected.add(name)
        self.gone.discard(name)

    def forget(self, name: str) -> None:
        self._expected.discard(name)
        self.pods.pop(name, None)
        self.gone.discard(name)
        self._seen.discard(name)
        self._events.pop(name, None)

    def changed(self, name: str) -> anyio.Event:
        """Set at the next change of the pod; take it before reading the pod, then wait for it."""
        event = self._events.get(name)
        if event is None or event.is_set():
            event = self._events[name] = anyio.Event()
        return event

    def _touch(self, name: str) -> None:
        event = self._events.get(name)
        if event is not None:
            event.set()

    def _update(self, pod: dict[str, Any]) -> None:
        name = (pod.get("metadata") or {}).get("name")
        if name:
            self.pods[name] = pod
            self._seen.add(name)
            self._touch(name)

    def _delete(self, name: str) -> None:
        self.pods.pop(name, None)
        if name in self._expected:
            self.gone.add(name)
        self._touch(name)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        delay = 0.2
        version = ""
        while True:
            try:
                if not version:
                    version = await self._list()
                    if not started:
                        started = True
                        self.ready.set()
                        task_status.started()
                version = await self._follow(version)
                delay = 0.2
            except _GoneError:
                version = ""
            except BackendError as e:
                # The API server is failing for now: nothing is lost, the watch resumes from its version.
                self.error = e
                _log.warning("watch of pods in %s: %s; retrying in %.1fs", self.namespace, e, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _list(self) -> str:
        listed = await self._api.list(self.namespace, self._selector)
        self.lists += 1
        names = set()
        for pod in listed.get("items") or ():
            names.add(pod["metadata"]["name"])
            self._update(pod)
        for name in list(self.pods):
            if name not in names:
                self._delete(name)
        for name in self._expected - names - self.gone:
            # Created (or being created) before this list began, and not in it: deleted meanwhile. A pod whose
            # create is still on its way shows up in the watch's next events and clears this.
            if name in self._seen:
                self._delete(name)
        version: str = (listed.get("metadata") or {}).get("resourceVersion") or ""
        return version

    async def _follow(self, version: str) -> str:
        response = await self._api.watch(self.namespace, self._selector, version, WATCH_SECONDS)
        try:
            async for line in response.content:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    break  # a cut line: the connection dropped mid-event; resume from the last version
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _GoneError()
                    raise BackendError(f"watch error: {obj.get('code')}: {obj.get('message')}")
                meta = obj.get("metadata") or {}
                version = meta.get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                name = meta.get("name")
                if not name:
                    continue
                if kind == "DELETED":
                    self._delete(name)
                else:
                    self._update(obj)
        except (OSError, anyio.EndOfStream) as e:
            raise BackendError(f"the watch connection dropped ({type(e).__name__})") from e
        except Exception as e:  # aiohttp's payload errors: the stream was cut
            if isinstance(e, _GoneError | BackendError):
                raise
            raise BackendError(f"the watch connection dropped ({type(e).__name__}: {e})") from e
        finally:
            response.release()
        return version
