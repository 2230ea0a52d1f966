"""The API server: an aiohttp application serving pods, secrets, events, nodes and discovery like the real one."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import socket
from typing import Any, Final

import aiohttp
import anyio
from aiohttp import web

from flytelike.testing.kubernetes import _names
from flytelike.testing.kubernetes._faults import Counters, Faults, middleware
from flytelike.testing.kubernetes._pods import decode
from flytelike.testing.kubernetes._pods_api import PodsApi
from flytelike.testing.kubernetes._schema import preload_schema
from flytelike.testing.kubernetes._state import ServerConfig, ServerState, read_json
from flytelike.testing.kubernetes._status import (
    Cause,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    required,
    unprocessable,
)
from flytelike.testing.kubernetes._store import Store

__all__ = ["ApiServer"]

JSON = dict[str, Any]
VERSION: Final = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-flytelike-emulator",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-12-01T00:00:00Z",
    "goVersion": "none (a Python emulator)",
    "compiler": "none",
    "platform": "linux/amd64",
}
_SECRET_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")
_SECRET_KEY_MESSAGE: Final = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
    "or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_RESOURCES: Final = [
    ("pods", "Pod", True, ["create", "delete", "deletecollection", "get", "list", "watch"]),
    ("pods/binding", "Binding", True, ["create"]),
    ("pods/log", "Pod", True, ["get"]),
    ("pods/status", "Pod", True, ["get", "patch", "update"]),
    ("secrets", "Secret", True, ["create", "delete", "get", "list", "update", "watch"]),
    ("events", "Event", True, ["create", "get", "list", "watch"]),
    ("nodes", "Node", False, ["create", "get", "list", "watch"]),
    ("namespaces", "Namespace", False, ["get", "list"]),
]


class ApiServer:
    """Serves the API on a loopback port until :meth:`close`.

    Args:
        config: the server's strictness and the namespaces that exist.
        faults: fault injection settings.
        counters: where requests are counted.
        token: the bearer token every request must carry; None: no authentication.
    """

    def __init__(self, config: ServerConfig, faults: Faults, counters: Counters, token: str | None = None) -> None:
        self.state = ServerState(config, faults, counters, Store(history=config.history))
        self._token = token
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; returns the URL (``http://127.0.0.1:PORT``)."""
        app = web.Application(middlewares=[middleware(self.state.faults, self.state.counters, self._token)])
        PodsApi(self.state).routes(app)
        self._routes(app)
        await anyio.to_thread.run_sync(preload_schema)  # 2 MB of JSON: read once, not in a request handler
        self.state.session = aiohttp.ClientSession()
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        self._runner = runner
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        site = web.SockSite(runner, sock)
        await site.start()
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.state.session is not None:
            await self.state.session.close()
            self.state.session = None

    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api", self.api_versions)
        r.add_get("/api/v1", self.api_resources)
        r.add_get("/apis", self.api_groups)
        r.add_get("/version", self.version)
        r.add_get("/version/", self.version)
        r.add_get("/api/", self.api_versions)
        r.add_get("/emulator/counters", self.counters)
        r.add_get("/api/v1/namespaces", self.namespaces)
        r.add_get("/api/v1/namespaces/{name}", self.namespace)
        secrets_path = "/api/v1/namespaces/{namespace}/secrets"
        r.add_get(secrets_path, self.list_secrets)
        r.add_post(secrets_path, self.create_secret)
        r.add_get(secrets_path + "/{name}", self.get_secret)
        r.add_put(secrets_path + "/{name}", self.replace_secret)
        r.add_delete(secrets_path + "/{name}", self.delete_secret)
        events_path = "/api/v1/namespaces/{namespace}/events"
        r.add_get("/api/v1/events", self.list_all_events)
        r.add_get(events_path, self.list_events)
        r.add_post(events_path, self.create_event)
        r.add_get(events_path + "/{name}", self.get_event)
        r.add_get("/api/v1/nodes", self.list_nodes)
        r.add_post("/api/v1/nodes", self.create_node)
        r.add_get("/api/v1/nodes/{name}", self.get_node)

    # --- discovery ---------------------------------------------------------------------------------------------

    async def api_versions(self, request: web.Request) -> web.Response:
        address = request.host
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
            }
        )

    async def api_resources(self, request: web.Request) -> web.Response:
        resources = [
            {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs}
            for name, kind, namespaced, verbs in _RESOURCES
        ]
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})

    async def api_groups(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    async def counters(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.counters.as_json())

    async def namespaces(self, request: web.Request) -> web.Response:
        items = [self._namespace_object(n) for n in self.state.config.namespaces]
        rv = str(self.state.store.resource_version)
        return web.json_response(
            {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}
        )

    async def namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.state.config.namespaces:
            raise not_found("Namespace", name)
        return web.json_response(self._namespace_object(name))

    @staticmethod
    def _namespace_object(name: str) -> JSON:
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # --- secrets -----------------------------------------------------------------------------------------------

    async def list_secrets(self, request: web.Request) -> web.StreamResponse:
        return await self.state.collection(request, "Secret", self.state.namespace(request))

    async def get_secret(self, request: web.Request) -> web.Response:
        namespace = self.state.namespace(request)
        return web.json_response(self.state.store.get("Secret", namespace, request.match_info["name"]))

    async def _decode_secret(self, request: web.Request, namespace: str) -> JSON:
        secret, _ = decode(
            await read_json(request), "Secret", "io.k8s.api.core.v1.Secret", strict=self.state.strict(request)
        )
        meta = secret.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        meta["namespace"] = namespace
        secret["apiVersion"], secret["kind"] = "v1", "Secret"
        secret.setdefault("type", "Opaque")
        data = dict(secret.get("data") or {})
        for key, value in (secret.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(value.encode()).decode()
        causes: list[Cause] = []
        name = meta.get("name", "")
        if not name:
            causes.append(required("metadata.name", "name or generateName is required"))
        causes.extend(invalid("metadata.name", name, p) for p in (_names.dns_subdomain(name) if name else []))
        for key, value in data.items():
            if not _SECRET_KEY.fullmatch(key):
                causes.append(invalid(f"data[{key}]", key, _SECRET_KEY_MESSAGE))
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise bad_request(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[{key}]'
                ) from None
        if causes:
            raise unprocessable("Secret", name, causes)
        secret["data"] = data
        return secret

    async def create_secret(self, request: web.Request) -> web.Response:
        namespace = self.state.namespace(request)
        secret = await self._decode_secret(request, namespace)
        return web.json_response(self.state.store.create("Secret", secret), status=201)

    async def replace_secret(self, request: web.Request) -> web.Response:
        namespace = self.state.namespace(request)
        name = request.match_info["name"]
        secret = await self._decode_secret(request, namespace)
        if secret["metadata"].get("name") != name:
            raise bad_request("the name of the object does not match the name on the URL")
        current = self.state.store.get("Secret", namespace, name)
        rv = secret["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise conflict(
                "Secret",
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        for key in ("uid", "creationTimestamp"):
            secret["metadata"][key] = current["metadata"][key]
        return web.json_response(self.state.store.update("Secret", secret))

    async def delete_secret(self, request: web.Request) -> web.Response:
        namespace = self.state.namespace(request)
        name = request.match_info["name"]
        self.state.store.delete("Secret", namespace, name)
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": "secrets"},
            }
        )

    # --- events ------------------------------------------------------------------------------------------------

    async def list_all_events(self, request: web.Request) -> web.StreamResponse:
        return await self.state.collection(request, "Event", None)

    async def list_events(self, request: web.Request) -> web.StreamResponse:
        return await self.state.collection(request, "Event", self.state.namespace(request))

    async def get_event(self, request: web.Request) -> web.Response:
        namespace = self.state.namespace(request)
        return web.json_response(self.state.store.get("Event", namespace, request.match_info["name"]))

    async def create_event(self, request: web.Request) -> web.Response:
        namespace = self.state.namespace(request)
        event, _ = decode(
            await read_json(request), "Event", "io.k8s.api.core.v1.Event", strict=self.state.strict(request)
        )
        meta = event.setdefault("metadata", {})
        meta["namespace"] = namespace
        event["apiVersion"], event["kind"] = "v1", "Event"
        name = meta.get("name", "")
        causes = [] if name else [required("metadata.name", "name or generateName is required")]
        if not event.get("involvedObject"):
            causes.append(required("involvedObject"))
        if causes:
            raise unprocessable("Event", name, causes)
        return web.json_response(self.state.store.create("Event", event), status=201)

    # --- nodes -------------------------------------------------------------------------------------------------

    async def list_nodes(self, request: web.Request) -> web.StreamResponse:
        return await self.state.collection(request, "Node", None)

    async def get_node(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.store.get("Node", "", request.match_info["name"]))

    async def create_node(self, request: web.Request) -> web.Response:
        node, _ = decode(await read_json(request), "Node", "io.k8s.api.core.v1.Node", strict=self.state.strict(request))
        meta = node.setdefault("metadata", {})
        name = meta.get("name", "")
        problems = _names.dns_subdomain(name) if name else []
        if not name or problems:
            causes = [invalid("metadata.name", name, p) for p in problems] or [required("metadata.name")]
            raise unprocessable("Node", name, causes)
        node["apiVersion"], node["kind"] = "v1", "Node"
        meta.pop("namespace", None)
        if self.state.store.find("Node", "", name) is not None:
            raise already_exists("Node", name)
        return web.json_response(self.state.store.create("Node", node), status=201)
