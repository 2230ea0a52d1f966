"""A container's environment as the kubelet builds it: values, secret keys and pod fields, with ``$(VAR)``
references expanded in values, the command and the arguments."""

from __future__ import annotations

import base64
import os
import re
from typing import Any, Final

from flytelike.testing.kubernetes._client import ApiClient, HttpError

__all__ = ["ConfigError", "container_env", "expand"]

JSON = dict[str, Any]
_REFERENCE: Final = re.compile(r"\$\$|\$\(([^)]*)\)")


class ConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError), with the kubelet's message."""


def expand(text: str, env: dict[str, str]) -> str:
    """Expand ``$(NAME)`` from ``env``; ``$$`` is a literal ``$``; unknown references stay as written."""

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REFERENCE.sub(replace, text)


def _field(pod: JSON, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    label = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if label:
        return str((meta.get(label.group(1)) or {}).get(label.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP", "127.0.0.1"),
        "status.podIP": status.get("podIP", "127.0.0.1"),
    }
    return str(values.get(path) or "")


async def _secret(client: ApiClient, namespace: str, name: str, cache: dict[str, JSON | None]) -> JSON | None:
    if name not in cache:
        try:
            cache[name] = await client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except HttpError as error:
            if error.status != 404:
                raise
            cache[name] = None
    return cache[name]


async def container_env(client: ApiClient, pod: JSON, container: JSON) -> dict[str, str]:
    """The environment of ``container``: ``PATH`` (this machine's, as images bring their own), ``HOSTNAME``, then
    ``envFrom`` secrets and ``env`` in order.

    Raises:
        ConfigError: a secret or key it needs does not exist (and is not optional).
    """
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {"PATH": os.environ.get("PATH", os.defpath), "HOSTNAME": pod["metadata"]["name"]}
    cache: dict[str, JSON | None] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("secretRef")
        if ref is None:
            continue
        secret = await _secret(client, namespace, ref["name"], cache)
        if secret is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'secret "{ref["name"]}" not found')
        for key, value in (secret.get("data") or {}).items():
            env[source.get("prefix", "") + key] = base64.b64decode(value).decode(errors="replace")
    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value") or "", env)
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = await _secret(client, namespace, ref["name"], cache)
            data = (secret or {}).get("data") or {}
            if secret is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                if secret is None:
                    raise ConfigError(f'secret "{ref["name"]}" not found')
                raise ConfigError(f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}")
            env[name] = base64.b64decode(data[ref["key"]]).decode(errors="replace")
        elif "fieldRef" in source:
            env[name] = _field(pod, source["fieldRef"]["fieldPath"])
    return env
