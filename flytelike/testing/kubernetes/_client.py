"""How the scheduler and kubelet talk to an API server: plain HTTP and JSON, so they work against any server.

:class:`Informer` is the list-then-watch loop of client-go's informers: one list, a watch resumed from the last
resourceVersion seen (bookmarks included), a relist after 410 Gone, and a retry after a dropped connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import aiohttp
import anyio

from flytelike.testing.kubernetes._faults import COMPONENT_AGENT

__all__ = ["ApiClient", "HttpError", "Informer"]

JSON = dict[str, Any]
_log = logging.getLogger(__name__)
_RETRY_DELAY: Final = 0.2


class HttpError(Exception):
    """A response other than 2xx.

    Attributes:
        status: the HTTP status.
        body: the response's JSON (a Status) or text.
    """

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class ApiClient:
    """JSON requests to one API server, as the component ``component`` (its User-Agent)."""

    def __init__(self, url: str, component: str, *, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": COMPONENT_AGENT + component, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None))

    async def aclose(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request; raises :class:`HttpError` for a non-2xx answer."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        async with self._session.request(method, self.url + path, data=data, params=params, headers=headers) as r:
            text = await r.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            if r.status >= 300:
                raise HttpError(r.status, parsed)
            return parsed

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[JSON]:
        """The events of one watch request, until the server ends it."""
        async with self._session.get(self.url + path, params={**params, "watch": "true"}) as response:
            if response.status >= 300:
                raise HttpError(response.status, await response.text())
            while line := await response.content.readline():
                yield json.loads(line)


Handler = Callable[[str, JSON], Awaitable[None]]


class Informer:
    """Keeps a local copy of the objects of a list path, and calls ``handler(type, obj)`` for every change.

    Args:
        client: the API client.
        path: the collection (``/api/v1/pods``).
        handler: called with ``ADDED``/``MODIFIED``/``DELETED`` and the object, in order; also ``SYNCED`` (with an
            empty object) after every (re)list, so a consumer can act on the state as a whole.
        params: selectors for the list and the watch.
    """

    def __init__(self, client: ApiClient, path: str, handler: Handler, params: dict[str, str] | None = None) -> None:
        self._client = client
        self._path = path
        self._handler = handler
        self._params = dict(params or {})
        self.objects: dict[tuple[str, str], JSON] = {}
        self.synced = anyio.Event()

    @staticmethod
    def key(obj: JSON) -> tuple[str, str]:
        return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

    async def run(self) -> None:
        """List and watch until cancelled."""
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    rv = await self._relist()
                rv = await self._watch(rv)
            except (aiohttp.ClientError, HttpError, OSError, ValueError) as error:
                _log.debug("informer %s: %s; retrying", self._path, error)
                await anyio.sleep(_RETRY_DELAY)

    async def _relist(self) -> str:
        listed = await self._client.request("GET", self._path, params=self._params)
        fresh = {self.key(o): o for o in listed["items"]}
        for key, obj in list(self.objects.items()):
            if key not in fresh:
                del self.objects[key]
                await self._handler("DELETED", obj)
        for key, obj in fresh.items():
            known = self.objects.get(key)
            self.objects[key] = obj
            if known is None:
                await self._handler("ADDED", obj)
            elif known["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                await self._handler("MODIFIED", obj)
        self.synced.set()
        await self._handler("SYNCED", {})
        return str(listed["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> str | None:
        params = {**self._params, "resourceVersion": rv, "allowWatchBookmarks": "true"}
        async for event in self._client.watch(self._path, params):
            type_, obj = event["type"], event["object"]
            if type_ == "ERROR":
                return None  # 410 Gone (or another error): list again
            rv = obj["metadata"]["resourceVersion"]
            if type_ == "BOOKMARK":
                continue
            if type_ == "DELETED":
                self.objects.pop(self.key(obj), None)
            else:
                self.objects[self.key(obj)] = obj
            await self._handler(type_, obj)
        return rv
