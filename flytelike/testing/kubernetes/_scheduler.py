"""The scheduler: binds pending pods to nodes they fit, or marks them Unschedulable with the real scheduler's
message and a FailedScheduling event; a pod left pending is tried again whenever a pod or node changes.

It only talks to the API server over HTTP (list and watch pods and nodes, create bindings, patch pod status, create
events), so it can schedule onto any API server.
"""

from __future__ import annotations

import logging
import secrets
from decimal import Decimal
from typing import Any, Final

import anyio

from flytelike.testing.kubernetes._client import ApiClient, HttpError, Informer
from flytelike.testing.kubernetes._fit import NodeFit, unschedulable_message
from flytelike.testing.kubernetes._status import now

__all__ = ["Scheduler", "post_event"]

JSON = dict[str, Any]
NAME: Final = "default-scheduler"
_TERMINAL: Final = ("Succeeded", "Failed")
_ZERO: Final = Decimal(0)
_log = logging.getLogger(__name__)


class Scheduler:
    """Schedules the pods of an API server (those naming ``default-scheduler``) until cancelled.

    Args:
        url: the API server.
        token: its bearer token, if it needs one.
    """

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self._client = ApiClient(url, "scheduler", token=token)
        self._pods = Informer(self._client, "/api/v1/pods", self._changed)
        self._nodes = Informer(self._client, "/api/v1/nodes", self._changed)
        self._dirty = anyio.Event()
        # Pods bound in this process whose binding the watch has not shown yet (pod key -> node name).
        self._assumed: dict[tuple[str, str], str] = {}
        self._reported: dict[tuple[str, str], str] = {}

    async def run(self) -> None:
        """Watch and schedule until cancelled."""
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._pods.run)
                tasks.start_soon(self._nodes.run)
                await self._pods.synced.wait()
                await self._nodes.synced.wait()
                while True:
                    await self._dirty.wait()
                    self._dirty = anyio.Event()
                    await self._cycle()
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()

    async def _changed(self, type_: str, obj: JSON) -> None:
        self._dirty.set()

    def _node_of(self, key: tuple[str, str], pod: JSON) -> str:
        node: str = pod["spec"].get("nodeName") or ""
        if node:
            self._assumed.pop(key, None)
            return node
        return self._assumed.get(key, "")

    async def _cycle(self) -> None:
        nodes = list(self._nodes.objects.values())
        bound: dict[str, list[JSON]] = {n["metadata"]["name"]: [] for n in nodes}
        pending = []
        for key, pod in list(self._pods.objects.items()):
            node = self._node_of(key, pod)
            if node:
                if pod.get("status", {}).get("phase") not in _TERMINAL and node in bound:
                    bound[node].append(pod)
            elif pod["spec"].get("schedulerName", NAME) == NAME and not pod["metadata"].get("deletionTimestamp"):
                pending.append((key, pod))
        self._assumed = {k: v for k, v in self._assumed.items() if k in self._pods.objects}
        self._reported = {k: v for k, v in self._reported.items() if k in self._pods.objects}
        fits = [NodeFit(n, bound[n["metadata"]["name"]]) for n in nodes]
        for key, pod in pending:
            failures = {fit.name: fit.reasons(pod) for fit in fits}
            candidates = [fit for fit in fits if not failures[fit.name][0]]
            if candidates:
                # Least allocated first, as the default scoring prefers; the name breaks ties the same way every time.
                best = max(candidates, key=lambda f: (f.free.get("cpu", _ZERO), f.free.get("memory", _ZERO), f.name))
                if await self._bind(pod, best.name):
                    best.reserve(pod)
                    self._assumed[key] = best.name
            else:
                await self._unschedulable(key, pod, unschedulable_message(len(fits), failures))

    async def _bind(self, pod: JSON, node: str) -> bool:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self._client.request(
                "POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body=binding
            )
        except HttpError as error:
            _log.debug("binding %s to %s: %s", meta["name"], node, error)
            return False
        await self._event(
            pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
        )
        return True

    async def _unschedulable(self, key: tuple[str, str], pod: JSON, message: str) -> None:
        if self._reported.get(key) == message:
            return
        meta = pod["metadata"]
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now(),
        }
        try:
            await self._client.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                body={"status": {"conditions": [condition]}},
                content_type="application/strategic-merge-patch+json",
            )
        except HttpError as error:
            _log.debug("marking %s unschedulable: %s", meta["name"], error)
            return
        self._reported[key] = message
        await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: JSON, type_: str, reason: str, message: str) -> None:
        await post_event(self._client, pod, type_, reason, message, component=NAME)


async def post_event(client: ApiClient, pod: JSON, type_: str, reason: str, message: str, *, component: str) -> None:
    """Record an event about ``pod`` (errors are logged: events are best effort, as in Kubernetes)."""
    meta = pod["metadata"]
    stamp = now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        await client.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
    except HttpError as error:
        _log.debug("event %s for %s: %s", reason, meta["name"], error)
