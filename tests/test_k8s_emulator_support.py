"""Fixtures and manifests shared by the Kubernetes emulator's tests (imported by them; it holds no tests itself)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
from kubernetes.aio import client, config

from flytelike.testing import KubernetesEmulator

PY = sys.executable
JSON = dict[str, Any]


@pytest.fixture
async def k8s() -> AsyncIterator[KubernetesEmulator]:
    async with KubernetesEmulator(bookmark_interval=0.2) as emulator:
        yield emulator


@pytest.fixture
async def v1(k8s: KubernetesEmulator) -> AsyncIterator[client.CoreV1Api]:
    api = await config.new_client_from_config(str(k8s.kubeconfig_path))
    async with api:
        yield client.CoreV1Api(api)


def manifest(
    name: str,
    command: list[str] | None = None,
    *,
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    env: list[JSON] | None = None,
    **spec: Any,
) -> JSON:
    """A one-container pod (``restartPolicy: Never``), checked against the Kubernetes schema (strict) first."""
    resources: JSON = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    container: JSON = {"name": "main", "image": "python:3.11", "command": command or ["true"], "resources": resources}
    if env:
        container["env"] = env
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "test"}},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }
    validate(pod)
    return pod


async def raw(
    k8s: KubernetesEmulator, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    """A request the typed client refuses to send (it validates bodies against its models): status, JSON, headers."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, k8s.url + path, json=body, params=params) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


def validate(pod: JSON) -> None:
    """The manifest is one the real API's schema accepts (kubernetes-validate, strict: no unknown fields)."""
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def python(code: str) -> list[str]:
    return [PY, "-c", code]


def phase(pod: JSON | None) -> str:
    return (pod or {}).get("status", {}).get("phase", "")


def ended(pod: JSON | None) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def container_state(pod: JSON | None) -> JSON:
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
    state: JSON = statuses[0].get("state") or {}
    return state


def waiting_reason(pod: JSON | None) -> str:
    return str((container_state(pod).get("waiting") or {}).get("reason", ""))
