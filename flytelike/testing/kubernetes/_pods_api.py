"""The pod endpoints: create, get, list, watch, delete (graceful for pods on a node), deletecollection, binding,
the status subresource for the kubelet, and logs (streamed from the node's kubelet)."""

from __future__ import annotations

import datetime
import secrets
from typing import Any, Final

import aiohttp
from aiohttp import web

from flytelike.testing.kubernetes._patch import merge_patch
from flytelike.testing.kubernetes._pods import decode, default_pod, qos_class, validate_pod
from flytelike.testing.kubernetes._selectors import FieldSelector, LabelSelector, selects
from flytelike.testing.kubernetes._state import ServerState, read_json, success
from flytelike.testing.kubernetes._status import ApiError, bad_request, conflict, now

__all__ = ["PodsApi"]

JSON = dict[str, Any]
_TERMINAL: Final = ("Succeeded", "Failed")
_GENERATE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


def _set_condition(pod: JSON, type_: str, status: str, reason: str = "", message: str = "") -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    condition = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": now()}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    for i, existing in enumerate(conditions):
        if existing.get("type") == type_:
            conditions[i] = condition
            return
    conditions.append(condition)


class PodsApi:
    """The handlers of ``/api/v1/namespaces/{namespace}/pods...`` over the shared server state."""

    def __init__(self, state: ServerState) -> None:
        self._state = state

    def routes(self, app: web.Application) -> None:
        base = "/api/v1/namespaces/{namespace}/pods"
        r = app.router
        r.add_get("/api/v1/pods", self.list_all)
        r.add_get(base, self.list)
        r.add_post(base, self.create)
        r.add_delete(base, self.delete_collection)
        r.add_get(base + "/{name}", self.get)
        r.add_delete(base + "/{name}", self.delete)
        r.add_post(base + "/{name}/binding", self.bind)
        r.add_get(base + "/{name}/status", self.get)
        r.add_put(base + "/{name}/status", self.put_status)
        r.add_patch(base + "/{name}/status", self.patch_status)
        r.add_get(base + "/{name}/log", self.log)

    async def list_all(self, request: web.Request) -> web.StreamResponse:
        return await self._state.collection(request, "Pod", None)

    async def list(self, request: web.Request) -> web.StreamResponse:
        return await self._state.collection(request, "Pod", self._state.namespace(request))

    async def get(self, request: web.Request) -> web.Response:
        namespace = self._state.namespace(request)
        return web.json_response(self._state.store.get("Pod", namespace, request.match_info["name"]))

    async def create(self, request: web.Request) -> web.Response:
        state = self._state
        namespace = state.namespace(request)
        pod, warnings = decode(await read_json(request), "Pod", "io.k8s.api.core.v1.Pod", strict=state.strict(request))
        meta = pod.setdefault("metadata", {})
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
        for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        default_pod(pod, namespace)
        validate_pod(pod, strict_names=state.config.strict_names)
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}
        if request.query.get("dryRun") == "All":
            return web.json_response(pod, status=201)
        stored = state.store.create("Pod", pod)
        state.counters.created[f"{namespace}/{meta['name']}"] += 1
        headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
        return web.json_response(stored, status=201, headers=headers)

    async def delete(self, request: web.Request) -> web.Response:
        state = self._state
        namespace = state.namespace(request)
        name = request.match_info["name"]
        pod = state.store.get("Pod", namespace, name)
        options = await read_json(request) if request.can_read_body else None
        grace_text = request.query.get("gracePeriodSeconds")
        grace: int = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if grace_text is not None:
            grace = int(grace_text)
        elif isinstance(options, dict) and options.get("gracePeriodSeconds") is not None:
            grace = int(options["gracePeriodSeconds"])
        precondition = (options or {}).get("preconditions") if isinstance(options, dict) else None
        if precondition and precondition.get("uid") not in (None, pod["metadata"]["uid"]):
            raise conflict(
                "Pod",
                name,
                f"Precondition failed: UID in precondition: {precondition['uid']}, "
                f"UID in object meta: {pod['metadata']['uid']}",
            )
        meta = pod["metadata"]
        running = pod["spec"].get("nodeName") and pod.get("status", {}).get("phase") not in _TERMINAL
        if grace <= 0 or not running:
            return web.json_response(state.store.delete("Pod", namespace, name))
        current = meta.get("deletionGracePeriodSeconds")
        if current is not None and current <= grace:
            return web.json_response(pod)
        # Graceful: the pod stays, marked, until its kubelet has stopped its containers and deletes it for good.
        deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
        meta["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["deletionGracePeriodSeconds"] = grace
        return web.json_response(state.store.update("Pod", pod))

    async def delete_collection(self, request: web.Request) -> web.Response:
        state = self._state
        namespace = state.namespace(request)
        predicate = selects(
            LabelSelector.parse(request.query.get("labelSelector")),
            FieldSelector.parse(request.query.get("fieldSelector"), "Pod"),
        )
        deleted = [
            state.store.delete("Pod", namespace, pod["metadata"]["name"])
            for pod in state.store.listing("Pod", namespace)
            if predicate(pod)
        ]
        body: JSON = {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(state.store.resource_version)},
        }
        body["items"] = deleted
        return web.json_response(body)

    async def bind(self, request: web.Request) -> web.Response:
        state = self._state
        namespace = state.namespace(request)
        name = request.match_info["name"]
        binding = await read_json(request)
        target = (binding or {}).get("target", {}).get("name") if isinstance(binding, dict) else None
        if not target:
            raise ApiError(422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value', kind="Binding")
        pod = state.store.get("Pod", namespace, name)
        if pod["metadata"].get("deletionTimestamp"):
            raise conflict("Pod", name, "pod is being deleted, cannot be assigned to a host")
        if pod["spec"].get("nodeName"):
            raise conflict("Pod", name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
        pod["spec"]["nodeName"] = target
        _set_condition(pod, "PodScheduled", "True")
        state.store.update("Pod", pod)
        return success(201)

    async def put_status(self, request: web.Request) -> web.Response:
        state = self._state
        namespace = state.namespace(request)
        name = request.match_info["name"]
        body = await read_json(request)
        pod = state.store.get("Pod", namespace, name)
        if not isinstance(body, dict):
            raise bad_request("the body of a status update must be a Pod")
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != pod["metadata"]["resourceVersion"]:
            raise conflict(
                "Pod",
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        pod["status"] = body.get("status") or {}
        return web.json_response(state.store.update("Pod", pod))

    async def patch_status(self, request: web.Request) -> web.Response:
        state = self._state
        namespace = state.namespace(request)
        name = request.match_info["name"]
        content_type = request.content_type
        if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f'application/merge-patch+json, application/strategic-merge-patch+json, not "{content_type}"',
            )
        patch = await read_json(request)
        pod = state.store.get("Pod", namespace, name)
        patched = merge_patch(pod, patch, strategic=content_type.startswith("application/strategic"))
        # The status subresource changes the status only (and the kubelet's own metadata is left alone).
        pod["status"] = patched.get("status") or {}
        return web.json_response(state.store.update("Pod", pod))

    async def log(self, request: web.Request) -> web.StreamResponse:
        state = self._state
        namespace = state.namespace(request)
        name = request.match_info["name"]
        pod = state.store.get("Pod", namespace, name)
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query.get("container")
        if container is None:
            if len(names) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        elif container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
        status_state = statuses.get(container, {}).get("state") or {}
        node_name = pod["spec"].get("nodeName")
        if not node_name or not ("running" in status_state or "terminated" in status_state):
            reason = (status_state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        node = state.store.get("Node", "", node_name)
        address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        params = {k: v for k, v in request.query.items() if k in ("follow", "tailLines", "limitBytes")}
        assert state.session is not None
        url = f"http://{address}:{port}/containerLogs/{namespace}/{name}/{container}"
        async with state.session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as upstream:
            if upstream.status != 200:
                raise bad_request(await upstream.text())
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, ConnectionError):
                pass
            return response
