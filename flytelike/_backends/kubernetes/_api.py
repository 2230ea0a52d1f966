"""The pod requests the backend makes, on the official client's asyncio API, with the API server's faults handled.

Transient failures (429 with its Retry-After, 5xx, dropped connections, timeouts) are retried with exponential
backoff; a create whose response was lost and whose retry finds the pod (409) is the same pod, adopted, never a
second one. Requests the API server refuses as invalid (400, 422) raise :class:`PodRefusedError` with its message, and
a quota refusal (403 ``exceeded quota``) raises :class:`QuotaExceededError`, so the caller can wait and try again.
Responses are read as JSON dicts (the ``_without_preload_content`` calls): pods are not turned into model objects
only to be read back as dicts.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
import anyio

from flytelike.errors import BackendError

__all__ = ["PodApi", "PodRefusedError", "QuotaExceededError"]

_TRANSIENT = frozenset({429, 500, 502, 503, 504})


class PodRefusedError(BackendError):
    """The API server refused a request as invalid (400/422): retrying it cannot help."""

    retryable = False

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class QuotaExceededError(BackendError):
    """A resource quota of the namespace has no room for the pod now (403)."""


def _message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:500]
    text = str(status.get("message") or status.get("reason") or status)
    causes = (status.get("details") or {}).get("causes") or ()
    if causes and not all(str(c.get("message", "")) in text for c in causes):
        text += "; " + "; ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    return text


class PodApi:
    """Pods, logs and watches in namespaces, through a ``CoreV1Api``.

    Attributes:
        requests: how many requests of each kind were sent (retries included).
    """

    def __init__(self, core: Any, *, attempts: int = 8, backoff: float = 0.2, max_backoff: float = 10.0) -> None:
        self._core = core
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self.requests: Counter[str] = Counter()

    async def _send(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """The response of ``call()`` once it is not a transient failure (its status may still be an error)."""
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            self.requests[what] += 1
            try:
                response = await call()
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as e:
                if attempt == self._attempts:
                    raise BackendError(f"Kubernetes API {what}: {type(e).__name__}: {e}") from e
                await anyio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, self._max_backoff)
                continue
            if response.status not in _TRANSIENT or attempt == self._attempts:
                return response
            wait = delay * random.uniform(0.5, 1.5)
            retry_after = response.headers.get("Retry-After")
            if retry_after and retry_after.isdigit():
                wait = max(wait, float(retry_after))
            response.release()
            await anyio.sleep(min(wait, self._max_backoff))
            delay = min(delay * 2, self._max_backoff)
        raise AssertionError("unreachable")

    async def _json(self, what: str, call: Callable[[], Awaitable[Any]], *, ok: tuple[int, ...] = (200,)) -> Any:
        response = await self._send(what, call)
        body = await response.read()
        if response.status not in ok:
            raise self._error(what, response.status, body)
        return json.loads(body) if body else None

    @staticmethod
    def _error(what: str, status: int, body: bytes) -> BackendError:
        message = f"Kubernetes API {what}: {status}: {_message(body)}"
        if status in (400, 422):
            return PodRefusedError(message, status=status)
        if status == 403 and b"exceeded quota" in body:
            return QuotaExceededError(message)
        return BackendError(message)

    async def create(self, namespace: str, body: dict[str, Any]) -> Literal["created", "exists"]:
        """Create the pod; ``exists`` when a pod of that name is there already (created by an earlier try)."""
        response = await self._send(
            "create", lambda: self._core.create_namespaced_pod_without_preload_content(namespace, body)
        )
        data = await response.read()
        if response.status in (200, 201, 202):
            return "created"
        if response.status == 409:
            return "exists"
        raise self._error("create", response.status, data)

    async def list(self, namespace: str, selector: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "list",
            lambda: self._core.list_namespaced_pod_without_preload_content(namespace, label_selector=selector),
        )
        return result

    async def watch(self, namespace: str, selector: str, resource_version: str, timeout: int) -> Any:
        """A watch response (read its ``content`` line by line); raises for an error status (410 included)."""
        response = await self._send(
            "watch",
            lambda: self._core.list_namespaced_pod_without_preload_content(
                namespace,
                label_selector=selector,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
            ),
        )
        if response.status != 200:
            raise self._error("watch", response.status, await response.read())
        return response

    async def logs(self, namespace: str, name: str, container: str, *, follow: bool) -> Any:
        """The log response of a container (read it whole, or line by line while it follows)."""
        response = await self._send(
            "logs",
            lambda: self._core.read_namespaced_pod_log_without_preload_content(
                name, namespace, container=container, follow=follow
            ),
        )
        if response.status != 200:
            raise self._error("logs", response.status, await response.read())
        return response

    async def delete(self, namespace: str, name: str) -> None:
        """Delete the pod now (its process is killed); a pod already gone is not an error."""
        await self._json(
            "delete",
            lambda: self._core.delete_namespaced_pod_without_preload_content(name, namespace, grace_period_seconds=0),
            ok=(200, 202, 404),
        )
