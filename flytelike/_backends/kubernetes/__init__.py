"""Tasks as Kubernetes pods, through the official client's asyncio API (``kubernetes.aio``), imported on first use."""

from flytelike._backends.kubernetes._backend import KubernetesBackend, from_input

__all__ = ["KubernetesBackend", "from_input"]
