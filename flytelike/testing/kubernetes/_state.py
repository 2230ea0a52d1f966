"""What the API server's handlers share: the store, the fault settings, the counters and the configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from flytelike.testing.kubernetes._faults import COMPONENT_AGENT, Counters, Faults
from flytelike.testing.kubernetes._selectors import FieldSelector, LabelSelector, selects
from flytelike.testing.kubernetes._status import bad_request, not_found
from flytelike.testing.kubernetes._store import Store
from flytelike.testing.kubernetes._watch import WatchSettings, list_response, watch_response

__all__ = ["ServerConfig", "ServerState", "read_json", "success"]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How strict the API server is.

    Attributes:
        namespaces: the namespaces that exist.
        strict_names: pod names must be DNS labels (<= 63 characters, as the pod's hostname), not only subdomains.
        strict_fields: unknown fields are rejected (400) unless the request asks ``fieldValidation=Warn|Ignore``;
            the real server's default is Warn (dropped, with a Warning header).
        watch: bookmark interval and default watch timeout.
        history: how many changes watches can resume from before 410 Gone.
    """

    namespaces: tuple[str, ...] = ("default",)
    strict_names: bool = True
    strict_fields: bool = True
    watch: WatchSettings = field(default_factory=WatchSettings)
    history: int = 1000


@dataclass(slots=True)
class ServerState:
    config: ServerConfig
    faults: Faults
    counters: Counters
    store: Store
    session: aiohttp.ClientSession | None = None

    def namespace(self, request: web.Request) -> str:
        """The request's namespace, which must exist (404 otherwise)."""
        namespace = request.match_info["namespace"]
        if namespace not in self.config.namespaces:
            raise not_found("Namespace", namespace)
        return namespace

    def strict(self, request: web.Request) -> bool:
        mode = request.query.get("fieldValidation", "")
        if mode and mode not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not "{mode}"')
        return mode == "Strict" or (not mode and self.config.strict_fields)

    async def collection(self, request: web.Request, kind: str, namespace: str | None) -> web.StreamResponse:
        """A list, or a watch when ``?watch=1``, with the request's label and field selectors."""
        query = request.query
        predicate = selects(
            LabelSelector.parse(query.get("labelSelector")), FieldSelector.parse(query.get("fieldSelector"), kind)
        )
        if query.get("watch", "").lower() in ("1", "true"):
            return await watch_response(
                request,
                self.store,
                kind,
                namespace,
                predicate,
                # The emulator's own components see no injected faults, so a forced 410 always reaches the client.
                faults=None if request.headers.get("User-Agent", "").startswith(COMPONENT_AGENT) else self.faults,
                settings=self.config.watch,
            )
        return list_response(request, self.store, kind, namespace, predicate)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (400 when it is not JSON)."""
    try:
        return json.loads(await request.read() or b"null")
    except ValueError as error:
        raise bad_request(f"the body of the request is not JSON: {error}") from None


def success(code: int = 200, **details: Any) -> web.Response:
    body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    if details:
        body["details"] = details
    return web.json_response(body, status=code)
